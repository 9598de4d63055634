"""The gate's reports built from phase reports: folding, TAP, JSON lines, Markdown, HTML and the
expectations baseline (fake reports; no pytest session, no runtime)."""

from __future__ import annotations

import html.parser
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from bulkhead import gate, report_formats
from bulkhead.expectations import parse
from bulkhead.report_html import render_html, section_verdicts
from bulkhead.results import Results, RunInfo

CALL = {"argv": ["runc", "start", "c1"], "exit": 1, "duration": 0.25, "cleanup": False,
        "stdout": "", "stderr": "no such container <c1>"}  # fmt: skip


@dataclass
class Phase:
    nodeid: str
    when: str
    outcome: str
    duration: float = 0.1
    user_properties: list[tuple[str, object]] = field(default_factory=list)
    longrepr: Any = None
    longreprtext: str = ""


def feed(results: Results, nodeid: str, spec: str, *phases: tuple[str, str], **extra: Any) -> None:
    for when, outcome in phases:
        report = Phase(nodeid, when, outcome, user_properties=[("spec", spec)])
        for key, value in extra.get(when, {}).items():
            setattr(report, key, value)
        results.add(report)


def sample() -> Results:
    r = Results()
    ok = ("setup", "passed"), ("call", "passed"), ("teardown", "passed")
    feed(r, "conformance/test_a.py::test_ok", "runtime.state.1", *ok,
         teardown={"bulkhead_calls": [CALL]})  # fmt: skip
    feed(r, "conformance/test_a.py::test_bad[x#1]", "runtime.start.1",
         ("setup", "passed"), ("call", "failed"), ("teardown", "passed"),
         call={"longreprtext": "def test():\n>   assert 1 == 2\nE   assert 1 == 2\n"},
         teardown={"bulkhead_calls": [CALL, CALL]})  # fmt: skip
    feed(r, "conformance/test_a.py::test_skip", "runtime.kill.1", ("setup", "skipped"),
         ("teardown", "passed"),
         setup={"longrepr": ("f.py", 3, "Skipped: no cgroup2 mount")})  # fmt: skip
    feed(r, "conformance/test_b.py::test_dev", "runtime.delete.3", ("setup", "passed"),
         ("call", "skipped"), ("teardown", "passed"),
         call={"wasxfail": "runc: deletes a created container"})  # fmt: skip
    feed(
        r,
        "conformance/test_b.py::test_fixed",
        "runtime.delete.2",
        ("setup", "passed"),
        ("call", "passed"),
        ("teardown", "passed"),
        call={"wasxfail": "baseline entry"},
    )
    feed(r, "conformance/test_b.py::test_leak", "runtime.delete.1", ("setup", "passed"),
         ("call", "passed"), ("teardown", "failed"),
         teardown={"longreprtext": "Failed: the test left behind:\n  a mount"})  # fmt: skip
    return r


INFO = RunInfo(runtime="runc", runtime_version="runc version 1.1.5", wall_seconds=10.0,
               host=("kernel 6.1", "cgroups: hybrid"), expectations="runc.toml")  # fmt: skip


def test_phases_fold_into_one_outcome_per_test() -> None:
    r = sample()
    outcomes = {t.nodeid.split("::")[1]: t.outcome for t in r.ordered()}
    assert outcomes == {
        "test_ok": "passed",
        "test_bad[x#1]": "failed",
        "test_skip": "skipped",
        "test_dev": "xfailed",
        "test_fixed": "xpassed",
        "test_leak": "error",
    }
    tests = r.tests
    assert tests["conformance/test_a.py::test_bad[x#1]"].message == "assert 1 == 2"
    assert tests["conformance/test_a.py::test_skip"].message == "no cgroup2 mount"
    assert tests["conformance/test_b.py::test_leak"].message == "Failed: the test left behind:"
    assert abs(tests["conformance/test_a.py::test_ok"].duration - 0.3) < 1e-9
    assert r.runtime_calls() == 3 and r.runtime_seconds() == 0.75
    assert r.overall() == "failed"
    assert r.requirement_verdicts()["runtime.delete.3"] == "deviation"
    assert r.requirement_verdicts()["runtime.kill.1"] == "not run"


def test_the_runtime_share_is_of_the_wall_time_times_workers() -> None:
    r = sample()
    assert "runtime calls 0.8 s of 10.0 s wall (8% of the wall time; 3 calls)" in (
        INFO.runtime_share(r)
    )
    two = RunInfo(runtime="runc", wall_seconds=10.0, workers=2)
    assert "(4% of wall time x 2 workers" in two.runtime_share(r)
    assert INFO.title == "runc version 1.1.5"


def test_tap_is_version_13_with_skip_todo_and_a_yaml_block() -> None:
    text = report_formats.render_tap(sample())
    lines = text.splitlines()
    assert lines[0] == "TAP version 13" and lines[-1] == "1..6"
    assert "ok 1 - conformance/test_a.py::test_ok" in lines
    assert "not ok 2 - conformance/test_a.py::test_bad[x\\#1]" in lines  # '#' escaped
    assert "ok 3 - conformance/test_a.py::test_skip # SKIP no cgroup2 mount" in lines
    assert any(line.startswith("not ok 4 - ") and "# TODO known deviation: runc:" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("ok 5 - ") and "# TODO fixed" in line for line in lines)
    block = lines[lines.index("not ok 2 - conformance/test_a.py::test_bad[x\\#1]") + 1 :]
    assert block[0] == "  ---" and "  spec: [runtime.start.1]" in block
    assert "    E   assert 1 == 2" in block and "  ..." in block


def test_json_lines_has_one_object_per_test_with_its_calls() -> None:
    rows = [json.loads(line) for line in report_formats.render_jsonl(sample()).splitlines()]
    assert len(rows) == 6
    bad = rows[1]
    assert bad["nodeid"].endswith("test_bad[x#1]") and bad["verdict"] == "failed"
    assert bad["spec"] == ["runtime.start.1"]
    assert bad["calls"][0] == CALL and len(bad["calls"]) == 2
    assert set(bad) == {"nodeid", "outcome", "verdict", "spec", "duration", "message", "calls"}
    again = Results.from_jsonl(report_formats.render_jsonl(sample()).splitlines())
    assert [t.outcome for t in again.ordered()] == [t.outcome for t in sample().ordered()]


def test_the_markdown_summary_names_the_broken_sentence_and_section() -> None:
    text = report_formats.render_markdown(sample(), INFO)
    assert text.startswith("## Bulkhead conformance: runc version 1.1.5: FAILED")
    assert "**2 failed" not in text and "1 failed, 1 errored, 1 passed" in text
    assert "runtime calls 0.8 s of 10.0 s wall" in text
    assert "### Failures (2)" in text
    assert "breaks `runtime.start.1` ([runtime.md § Start](" in text
    assert "runtime.md#start)): " in text
    assert "### Fixed: expected to fail, now passing (1)" in text
    # No selection: the core requirements no collected test names are listed.
    assert "### Core requirements no collected test covers (" in text
    assert "`runtime.state.1`" not in text.split("no collected test covers", 1)[1]


def test_a_selection_lists_only_its_own_uncovered_requirements() -> None:
    info = RunInfo(runtime="runc", selected=frozenset({"runtime.state.1", "runtime.state.3"}))
    text = report_formats.render_markdown(sample(), info)
    tail = text.split("### Selected requirements no collected test covers (1)", 1)[1]
    assert "`runtime.state.3`" in tail and "`runtime.state.1`" not in tail


class _Checker(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if tag in ("script", "link", "img") or (name == "src" and value):
                self.external.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_is_self_contained_and_shows_sections_failures_and_host() -> None:
    page = render_html(sample(), INFO)
    checker = _Checker()
    checker.feed(page)
    assert checker.external == []  # nothing fetched: no script, stylesheet link or image
    text = " ".join(checker.text)
    assert "kernel 6.1" in text and "cgroups: hybrid" in text
    assert "$ runc start c1" in text and "no such container <c1>" in text  # escaped, then shown
    assert "<c1>" not in page.replace("&lt;c1&gt;", "")
    rows = {(f, s): tally for f, s, _, tally in section_verdicts(sample().requirement_verdicts())}
    assert rows[("runtime.md", "Start")] == {"failed": 1}
    assert rows[("runtime.md", "Delete")] == {"deviation": 1, "fixed": 1, "failed": 1}


def test_the_baseline_lists_failures_and_deviations_and_parses_back() -> None:
    text = gate.render_baseline(sample(), "runc", (1, 1, 5), "0.1.0")
    entries = parse(text, "baseline")
    names = [e.test for e in entries]
    assert names == ["test_a.py::test_bad[x#1]", "test_b.py::test_dev", "test_b.py::test_leak"]
    assert all(not e.strict for e in entries)
    assert all(e.applies_to((1, 1, 5)) and e.applies_to((1, 2, 0)) for e in entries)
    assert not entries[0].applies_to((1, 1, 4))
    assert entries[0].spec == "runtime.start.1"
    assert tomllib.loads(text)["expect"][0]["reason"].startswith("failed when the baseline")
    assert all(e.matches(f"conformance/{e.test}") for e in entries)


def test_a_baseline_for_an_unknown_version_has_no_range() -> None:
    entries = parse(gate.render_baseline(sample(), "x", None, "0"), "baseline")
    assert entries and all(e.versions is None for e in entries)


def test_report_targets_are_written_with_their_parents(tmp_path: Any) -> None:
    targets = {k: str(tmp_path / "deep" / f"r.{k}") for k in gate.REPORTS}
    lines = gate.write_reports(sample(), INFO, targets)
    assert len(lines) == 4
    assert all((tmp_path / "deep" / f"r.{k}").stat().st_size > 0 for k in gate.REPORTS)
