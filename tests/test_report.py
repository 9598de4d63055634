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


# --- failure report helpers ---------------------------------------------------------------------

from bulkhead.report import compact_json, describe_calls, final_example  # noqa: E402
from bulkhead.runtime import Call  # noqa: E402


def call(*args: str, example: int | None = None, out: str = "", cleanup: bool = False) -> Call:
    return Call(("rt", *args), 0, out, "", 0.01, cleanup=cleanup, example=example)


def test_final_example_keeps_the_last_examples_items_and_untagged_ones() -> None:
    calls = [call("a", example=1), call("b", example=2), call("c", example=3), call("d")]
    assert [c.argv[1] for c in final_example(calls)] == ["c", "d"]


def test_final_example_outside_property_tests_keeps_everything() -> None:
    calls = [call("a"), call("b")]
    assert final_example(calls) == calls


def test_identical_consecutive_calls_are_shown_once_with_their_count() -> None:
    polls = [call("state", "c1", out="running")] * 4
    text = describe_calls([call("start", "c1"), *polls, call("state", "c1", out="stopped")])
    assert text.count("$ rt state c1") == 2
    assert "(the same call 4 times in a row, same answer; 40 ms in all)" in text


def test_compact_json_is_still_the_same_json() -> None:
    doc = {"ociVersion": "1.0.2", "process": {"args": ["sh"], "env": []}, "linux": {}, "x": 1}
    text = compact_json(json.dumps(doc, indent=2))
    assert json.loads(text) == doc
    assert len(text.splitlines()) == 9
    assert compact_json("not json {") == "not json {"


def test_spec_reports_read_back_and_merge_worst_first(tmp_path: Path) -> None:
    host = SpecLedger()
    host.record("t::a", ["x.1", "x.2", "x.3"], "passed")
    host.record("t::b", ["x.4"], "skipped")
    vm = SpecLedger()
    vm.record("v::a", ["x.1"], "failed")
    vm.record("v::b", ["x.2", "x.4"], "passed")
    vm.record("v::c", ["x.5"], "xfailed")
    host.write(tmp_path / "host.json")
    vm.write(tmp_path / "vm.json")
    merged = SpecLedger.read(tmp_path / "host.json")
    assert merged.verdicts == host.verdicts
    merged.absorb(SpecLedger.read(tmp_path / "vm.json"))
    assert merged.verdicts == {
        "x.1": "failed", "x.2": "met", "x.3": "met", "x.4": "met", "x.5": "deviation",
    }  # fmt: skip
    assert merged.tests["x.2"] == {"t::a", "v::b"}
