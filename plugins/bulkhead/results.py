"""One record per test, folded from pytest's phase reports: what the gate's reports are made of.

The plugin feeds every phase report (setup, call, teardown) of a run to a ``Results``; under
xdist this happens on the controller, from the workers' serialised reports. The runtime calls of
a test travel on its teardown report (``bulkhead_calls``, a list of plain dicts, which survives
xdist's serialisation as any extra report attribute does). Nothing here imports pytest.

Outcomes are pytest's words: passed, failed, error (a setup or teardown failure, such as the leak
sentinel's), skipped, xfailed (a known deviation held), xpassed (a non-strict expectation, as a
baseline writes them, that no longer fails: the entry can go). A test's *verdict* is the word
the reports use: met, failed, deviation, not run, fixed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

VERDICTS = {
    "passed": "met",
    "failed": "failed",
    "error": "failed",
    "skipped": "not run",
    "xfailed": "deviation",
    "xpassed": "fixed",
}
# A requirement takes the worst verdict of its tests (bulkhead.report.SpecLedger's order).
_RANK = {"failed": 4, "deviation": 3, "fixed": 2, "met": 1, "not run": 0}
CALL_TEXT_LIMIT = 2000


class PhaseReport(Protocol):
    """What is read of a pytest TestReport."""

    @property
    def nodeid(self) -> str: ...
    @property
    def when(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def user_properties(self) -> Sequence[tuple[str, object]]: ...
    @property
    def longrepr(self) -> Any: ...
    @property
    def longreprtext(self) -> str: ...


def call_record(call: Any) -> dict[str, Any]:
    """A runtime call (bulkhead.runtime.Call) as plain data for a report."""

    def cut(text: str) -> str:
        text = text.strip()
        if len(text) <= CALL_TEXT_LIMIT:
            return text
        return text[:CALL_TEXT_LIMIT] + f"... ({len(text) - CALL_TEXT_LIMIT} more characters)"

    return {
        "argv": list(call.argv),
        "exit": call.returncode,
        "duration": round(call.duration, 6),
        "cleanup": bool(call.cleanup),
        "stdout": cut(call.stdout),
        "stderr": cut(call.stderr),
    }


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class, whatever its name

    nodeid: str
    outcome: str = "passed"
    spec: list[str] = field(default_factory=list)
    duration: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    # The first line a reader needs: the assertion, the skip reason, the deviation's reason.
    message: str = ""
    # The whole failure text (traceback and the plugin's sections) for failed tests.
    details: str = ""

    @property
    def verdict(self) -> str:
        return VERDICTS[self.outcome]

    @property
    def runtime_seconds(self) -> float:
        return sum(float(c["duration"]) for c in self.calls)

    def as_json(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "spec": self.spec,
            "duration": round(self.duration, 6),
            "message": self.message,
            "calls": self.calls,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestResult:
        return cls(
            nodeid=str(data["nodeid"]),
            outcome=str(data["outcome"]),
            spec=[str(i) for i in data.get("spec", [])],
            duration=float(data.get("duration", 0.0)),
            calls=list(data.get("calls", [])),
            message=str(data.get("message", "")),
        )


def _skip_reason(longrepr: Any) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def _first_line(text: str) -> str:
    """The line a failure is known by: pytest's ``E   `` line if there is one."""
    lines = text.splitlines()
    for line in lines:
        if line.startswith("E   "):
            return line[4:].strip()
    return next((line.strip() for line in lines if line.strip()), "")


@dataclass
class Results:
    tests: dict[str, TestResult] = field(default_factory=dict)

    def add(self, report: PhaseReport) -> None:
        """Folds one phase report into its test's record (the order pytest reports them in)."""
        result = self.tests.get(report.nodeid)
        if result is None:
            result = self.tests[report.nodeid] = TestResult(report.nodeid)
        result.duration += report.duration
        if not result.spec:
            ids = dict(report.user_properties).get("spec")
            if ids:
                result.spec = str(ids).split()
        calls = getattr(report, "bulkhead_calls", None)
        if calls:
            result.calls = list(calls)
        wasxfail = getattr(report, "wasxfail", None)
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            if wasxfail is not None and report.outcome == "skipped":
                result.outcome, result.message = "xfailed", str(wasxfail)
            elif wasxfail is not None and report.outcome == "passed":
                result.outcome, result.message = "xpassed", str(wasxfail)
            elif report.outcome == "skipped":
                result.outcome, result.message = "skipped", _skip_reason(report.longrepr)
            elif report.outcome == "failed":
                result.outcome = "failed" if report.when == "call" else "error"
                result.details = report.longreprtext
                result.message = _first_line(result.details)
        elif report.when == "teardown" and report.outcome == "failed":
            # An error after the test (the leak sentinel, a fixture's teardown) outranks a pass
            # and a deviation: it is a finding of its own.
            if result.outcome not in ("failed", "error"):
                result.message = _first_line(report.longreprtext)
            result.outcome = "error"
            result.details = "\n\n".join(t for t in (result.details, report.longreprtext) if t)

    def ordered(self) -> list[TestResult]:
        return list(self.tests.values())

    def counts(self) -> Counter[str]:
        return Counter(t.outcome for t in self.tests.values())

    def failures(self) -> list[TestResult]:
        return [t for t in self.tests.values() if t.outcome in ("failed", "error")]

    def runtime_seconds(self) -> float:
        return sum(t.runtime_seconds for t in self.tests.values())

    def runtime_calls(self) -> int:
        return sum(len(t.calls) for t in self.tests.values())

    def covered(self) -> set[str]:
        """Requirement ids named by some collected (reported) test."""
        return {i for t in self.tests.values() for i in t.spec}

    def requirement_verdicts(self) -> dict[str, str]:
        """Each named requirement's worst verdict over its tests."""
        out: dict[str, str] = {}
        for test in self.tests.values():
            for req in test.spec:
                if _RANK[test.verdict] >= _RANK[out.get(req, "not run")]:
                    out[req] = test.verdict
        return out

    def overall(self) -> str:
        """``failed`` when a test failed or errored (the gate's exit code 1), else ``met``."""
        return "failed" if self.failures() else "met"

    @classmethod
    def from_jsonl(cls, lines: Iterable[str]) -> Results:
        results = cls()
        for line in lines:
            if line.strip():
                test = TestResult.from_json(json.loads(line))
                results.tests[test.nodeid] = test
        return results


@dataclass(frozen=True)
class RunInfo:
    """What the reports say about the run as a whole."""

    runtime: str
    runtime_version: str = ""
    runtime_path: str = ""
    wall_seconds: float = 0.0
    workers: int = 1
    host: Sequence[str] = ()
    expectations: str = ""
    # The --spec-profile the run used (bulkhead.disputes).
    profile: str = "strict"
    suite_version: str = ""
    # The requirements the run was asked to cover (--spec-id / --spec-section); None: all.
    selected: frozenset[str] | None = None

    @property
    def title(self) -> str:
        """``runc version 1.1.5+ds1`` (a runtime's own words usually start with its name), or
        the name and what it said."""
        version = self.runtime_version.strip()
        if version.lower().startswith(self.runtime.lower()):
            return version
        return f"{self.runtime} {version}".strip()

    def runtime_share(self, results: Results) -> str:
        """How much of the wall time the runtime itself took: the sum of its calls' durations.
        Under xdist the calls of several workers overlap, so the share is of wall x workers."""
        spent = results.runtime_seconds()
        if self.wall_seconds <= 0:
            return f"runtime calls {spent:.1f} s ({results.runtime_calls()} calls)"
        capacity = self.wall_seconds * max(self.workers, 1)
        share = 100.0 * spent / capacity
        of = "the wall time" if self.workers <= 1 else f"wall time x {self.workers} workers"
        return (
            f"runtime calls {spent:.1f} s of {self.wall_seconds:.1f} s wall "
            f"({share:.0f}% of {of}; {results.runtime_calls()} calls)"
        )
