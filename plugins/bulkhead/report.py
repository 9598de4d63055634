"""Results per spec requirement: which requirement ids were checked and how they fared.

Each test's ``spec(...)`` ids travel with its reports (as a user property, so they cross from
xdist workers to the controller and appear in the JUnit XML); the controller folds the
outcomes into one verdict per requirement: ``failed`` beats ``deviation`` (a strict
expectation held), which beats ``met``; a requirement whose tests were all skipped is
``not run``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar


class _Tagged(Protocol):
    @property
    def example(self) -> int | None: ...


Tagged = TypeVar("Tagged", bound=_Tagged)


def final_example(items: Sequence[Tagged]) -> list[Tagged]:
    """The items (runtime calls, bundle records) of the last hypothesis example among
    ``items``, with those that belong to no example; all of them outside property tests.

    Hypothesis runs the failing, shrunk example last, so this is what a report should show.
    """
    tags = [i.example for i in items if i.example is not None]
    if not tags:
        return list(items)
    return [i for i in items if i.example is None or i.example == tags[-1]]


RANK = {"failed": 3, "deviation": 2, "met": 1, "not run": 0}


@dataclass
class SpecLedger:
    tests: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    verdicts: dict[str, str] = field(default_factory=dict)

    def record(self, nodeid: str, ids: list[str], outcome: str) -> None:
        """``outcome`` is one of passed, failed, skipped, xfailed (pytest's words)."""
        verdict = {"passed": "met", "xfailed": "deviation", "skipped": "not run"}.get(
            outcome, "failed"
        )
        for req in ids:
            self.tests[req].add(nodeid)
            if RANK[verdict] >= RANK.get(self.verdicts.get(req, "not run"), 0):
                self.verdicts[req] = verdict

    def summary(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for verdict in self.verdicts.values():
            counts[verdict] += 1
        labels = {
            "met": "met",
            "deviation": "with a known deviation",
            "failed": "FAILED",
            "not run": "not run here",
        }
        parts = [f"{counts[v]} {label}" for v, label in labels.items() if counts[v]]
        return f"{len(self.verdicts)} spec requirements checked: " + ", ".join(parts)

    @classmethod
    def read(cls, path: Path) -> SpecLedger:
        """A ledger back from the JSON that ``write`` made (``--spec-report``)."""
        data = json.loads(path.read_text())
        ledger = cls()
        for req, entry in data.items():
            ledger.verdicts[req] = entry["verdict"]
            ledger.tests[req].update(entry["tests"])
        return ledger

    def absorb(self, other: SpecLedger) -> None:
        """Another run of the same runtime (the cgroup v2 VM's, say) into this one, by the rule
        ``record`` follows within one run: the worst verdict wins, so a requirement met on one
        host and failed on the other is failed, and one run here and skipped there is met."""
        for req, verdict in other.verdicts.items():
            self.tests[req].update(other.tests[req])
            if RANK[verdict] >= RANK.get(self.verdicts.get(req, "not run"), 0):
                self.verdicts[req] = verdict

    def write(self, path: Path) -> None:
        data = {
            req: {"verdict": self.verdicts[req], "tests": sorted(self.tests[req])}
            for req in sorted(self.verdicts)
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


class _Described(_Tagged, Protocol):
    @property
    def argv(self) -> tuple[str, ...]: ...
    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def cleanup(self) -> bool: ...
    @property
    def duration(self) -> float: ...

    def describe(self) -> str: ...


def describe_calls(calls: Sequence[_Described]) -> str:
    """Runtime calls for a failure report, one block each; a run of identical calls (a poll of
    ``state`` waiting for a status) is shown once with how often it was repeated."""
    lines: list[str] = []
    i = 0
    while i < len(calls):
        call = calls[i]
        key = (call.argv, call.returncode, call.stdout, call.stderr, call.cleanup)
        j = i + 1
        while j < len(calls):
            other = calls[j]
            if (other.argv, other.returncode, other.stdout, other.stderr, other.cleanup) != key:
                break
            j += 1
        lines.append(call.describe())
        if j - i > 1:
            total = sum(c.duration for c in calls[i:j]) * 1000
            lines.append(
                f"  (the same call {j - i} times in a row, same answer; {total:.0f} ms in all)"
            )
        i = j
    return "\n".join(lines)


def compact_json(text: str) -> str:
    """A config.json on a few lines: one per top-level key, and one per key of ``process``
    and ``linux`` (what tests vary most), each compact; unparsable text is returned as it is."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    if not isinstance(data, dict):
        return json.dumps(data, separators=(",", ":"))

    def one(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))

    def block(items: dict[str, object], indent: str, nested: bool) -> list[str]:
        out = []
        for key, value in items.items():
            if nested and key in ("process", "linux") and isinstance(value, dict) and value:
                inner = block(value, indent + "  ", False)
                out.append(f"{indent}{one(key)}: {{\n" + ",\n".join(inner) + f"\n{indent}}}")
            else:
                out.append(f"{indent}{one(key)}: {one(value)}")
        return out

    return "{\n" + ",\n".join(block(data, "  ", True)) + "\n}"
