"""The static count of requirement ids behind `bulkhead --version` and certify."""

from __future__ import annotations

from bulkhead.coverage import ids_in_source

LITERAL = """
import pytest

@pytest.mark.spec("config.hostname.apply-hostname", "runtime.state.4")
def test_x(): ...

IGNORED = "runtime.start.1"  # a constant, but no mark takes a computed id here
"""

TABLE = """
import pytest

CASES = {"ro": ("config.linux-mount-options.39", 1), "rw": ("config.linux-mount-options.50", 2)}

def cases():
    return [pytest.param(o, marks=pytest.mark.spec(req, "config.mounts.apply-mounts"))
            for o, (req, _) in CASES.items()]

MESSAGE = "see config.md for the options"  # prose, not an id
"""


def test_literal_marks_are_counted_and_other_strings_not() -> None:
    assert ids_in_source(LITERAL) == {"config.hostname.apply-hostname", "runtime.state.4"}


def test_a_table_feeding_computed_marks_names_its_ids() -> None:
    assert ids_in_source(TABLE) == {
        "config.linux-mount-options.39",
        "config.linux-mount-options.50",
        "config.mounts.apply-mounts",
    }
