"""conformance/_idmap.py: which runtimes the idmap tests judge, and why a skip."""

from __future__ import annotations

import pytest

from conformance._idmap import MAPPED, ON_DISK, Probe, judge

UNCHANGED = f"{ON_DISK}:{ON_DISK}"


def probe(owner: str = "", refused: str | None = None, state: str | None = "1.0.0") -> Probe:
    return Probe(refused=refused, owner=owner, state_version=state)


def test_a_declaration_decides_without_a_probe() -> None:
    assert judge(True, "1.0.2-dev", None) is None
    reason = judge(False, "1.3.0", None)
    assert reason is not None and "enabled false" in reason


@pytest.mark.parametrize(
    "seen",
    [probe(f"{MAPPED}:{MAPPED}"), probe("65534:65534"), probe(""), probe(UNCHANGED, state="1.2.0")],
)
def test_without_a_declaration_the_tests_run_unless_ignoring_was_the_spec(seen: Probe) -> None:
    # Mapped, wrong, silent, or ignored by a runtime of a spec that has the fields: judged.
    assert judge(None, None, seen) is None


@pytest.mark.parametrize(
    ("spec_max", "state", "named"),
    [("1.0.2-dev", "1.0.2-dev", "ociVersionMax"), (None, "1.0.0", "ociVersion in its state")],
)
def test_ignoring_the_fields_is_no_finding_for_a_runtime_of_an_older_spec(
    spec_max: str | None, state: str, named: str
) -> None:
    reason = judge(None, spec_max, probe(UNCHANGED, state=state))
    assert reason is not None and named in reason and "Extensibility" in reason
    # The features' ociVersionMax wins over the state's ociVersion.
    assert judge(None, "1.1.0", probe(UNCHANGED, state="1.0.0")) is None


def test_a_refusal_is_a_skip_quoting_the_runtime() -> None:
    reason = judge(None, None, probe(refused="idmapped mounts are not supported"))
    assert reason is not None and "not supported" in reason
