"""The per-requirement ledger behind the spec summary line and --spec-report."""

from __future__ import annotations

import json
from pathlib import Path

from bulkhead.report import SpecLedger


def test_the_worst_outcome_of_a_requirement_wins() -> None:
    ledger = SpecLedger()
    ledger.record("t1", ["a", "b"], "passed")
    ledger.record("t2", ["a"], "xfailed")
    ledger.record("t3", ["b"], "failed")
    ledger.record("t4", ["b"], "passed")
    ledger.record("t5", ["c"], "skipped")
    assert ledger.verdicts == {"a": "deviation", "b": "failed", "c": "not run"}


def test_a_run_test_outranks_a_skipped_one() -> None:
    ledger = SpecLedger()
    ledger.record("t1", ["a"], "skipped")
    ledger.record("t2", ["a"], "passed")
    assert ledger.verdicts == {"a": "met"}


def test_summary_counts_each_verdict() -> None:
    ledger = SpecLedger()
    for i, outcome in enumerate(["passed", "passed", "xfailed", "skipped"]):
        ledger.record(f"t{i}", [f"r{i}"], outcome)
    assert ledger.summary() == (
        "4 spec requirements checked: 2 met, 1 with a known deviation, 1 not run here"
    )


def test_the_report_lists_tests_per_requirement(tmp_path: Path) -> None:
    ledger = SpecLedger()
    ledger.record("t2", ["a"], "passed")
    ledger.record("t1", ["a"], "passed")
    ledger.write(tmp_path / "spec.json")
    assert json.loads((tmp_path / "spec.json").read_text()) == {
        "a": {"verdict": "met", "tests": ["t1", "t2"]}
    }
