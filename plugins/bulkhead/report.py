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
from dataclasses import dataclass, field
from pathlib import Path

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

    def write(self, path: Path) -> None:
        data = {
            req: {"verdict": self.verdicts[req], "tests": sorted(self.tests[req])}
            for req in sorted(self.verdicts)
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
