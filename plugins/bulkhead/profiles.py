"""Hypothesis settings for Bulkhead's property tests, applied to Bulkhead's tests only.

A container takes tens of ms to start, so the tests get no deadline and few examples (each
example may create and destroy a container). The plugin is loaded into every pytest run of an
environment where Bulkhead is installed, so nothing here touches hypothesis's global state: no
profile is registered or loaded at import or at configure time, and another project's property
tests keep their own settings. The plugin applies ours to our items (``apply``) and makes them
the default only while one of our tests runs (``scoped_default``), which also covers settings a
test builds at run time (a state machine's ``settings(stateful_step_count=...)``).

Profiles: ``dev`` (the default), ``ci`` (when the CI variable is set: derandomised, so a gate run
is reproducible), ``thorough`` (nightly). Choose one with ``--hypothesis-profile bulkhead-<name>``;
only then is that profile registered, under that name, because hypothesis loads it for the whole
run. Any other ``--hypothesis-profile`` the user gives is respected: our tests then run with it.

Nothing imports hypothesis before a Bulkhead test needs it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings

PREFIX = "bulkhead-"
NAMES = ("dev", "ci", "thorough")
_EXAMPLES = {"dev": 8, "ci": 8, "thorough": 100}
_examples = itertools.count(1)


def default_name() -> str:
    return "ci" if os.environ.get("CI") else "dev"


def profile(name: str) -> settings:
    """Our settings ``name`` (dev, ci, thorough), built on hypothesis's current default."""
    from hypothesis import HealthCheck, settings

    extra: dict[str, Any] = {}
    if name == "ci":
        extra = {"derandomize": True, "database": None, "print_blob": True}
    return settings(
        max_examples=_EXAMPLES[name],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        **extra,
    )


def register_requested(requested: str | None) -> None:
    """Registers our profile when the user asked for it by name (``bulkhead-thorough``), so
    that hypothesis's own ``--hypothesis-profile`` can load it. Other names are not ours."""
    if not requested or not requested.startswith(PREFIX):
        return
    name = requested.removeprefix(PREFIX)
    if name in NAMES:
        from hypothesis import settings

        settings.register_profile(requested, profile(name))


def describe(requested: str | None) -> str:
    """For the report header: which settings Bulkhead's property tests run with."""
    if requested:
        return f"hypothesis profile {requested!r} (from --hypothesis-profile)"
    name = default_name()
    return (
        f"hypothesis profile {PREFIX}{name} for Bulkhead's tests only "
        f"({_EXAMPLES[name]} examples, no deadline)"
    )


def apply(function: Any, chosen: settings) -> bool:
    """Gives a ``@given`` test ``chosen`` unless its author set settings of their own.

    ``@given`` captures hypothesis's default when the module is imported; our settings replace
    that for this function only. Returns whether they were applied.
    """
    function = getattr(function, "__func__", function)
    if not getattr(function, "is_hypothesis_test", False):
        return False
    if getattr(function, "_hypothesis_internal_settings_applied", False):
        return False  # an explicit @settings on the test wins
    chosen(function)
    return True


@contextlib.contextmanager
def scoped_default(chosen: settings) -> Iterator[None]:
    """Makes ``chosen`` hypothesis's default for the duration of the block only."""
    try:
        from hypothesis._settings import local_settings
    except ImportError:  # a hypothesis without it: @given tests still get ``apply``
        yield
        return
    with local_settings(chosen):
        yield


def current_example() -> int | None:
    """A number for the hypothesis example running now (None outside one).

    Every example runs in a build context of its own; the number is stored on it, so the calls
    and bundles of one example can be told from those of the next, and a report can show those
    of the final, shrunk example only. hypothesis is looked up, never imported, here: a test
    that does not use it must not pay for it.
    """
    control = sys.modules.get("hypothesis.control")
    if control is None:
        return None
    try:
        context = control.current_build_context()
    except Exception:  # InvalidArgument: no example is running
        return None
    number = getattr(context, "_bulkhead_example", None)
    if number is None:
        number = next(_examples)
        context._bulkhead_example = number
    return int(number)
