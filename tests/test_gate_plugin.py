"""The gate in a pytest session: report options, selection by requirement, strict runs, the
expectations baseline and the exit codes (inner sessions against a fake runtime that logs its
argv and refuses every verb but ``--version`` and ``delete``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# One copy of the lazily imported machinery for the whole run (see test_plugin_reports).
import bulkhead.expectations
import bulkhead.gate
import bulkhead.report
import bulkhead.report_formats
import bulkhead.report_html
import bulkhead.requirements
import bulkhead.results
import bulkhead.suite  # noqa: F401

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the suite's fixtures need root")

FAKE = r"""#!/bin/sh
for arg; do
    case "$arg" in
        --version) echo "fake-runtime version 2.3.4"; exit 0 ;;
        delete) exit 0 ;;
    esac
done
echo "fake: refusing $*" >&2
exit 3
"""

TESTS = """
import pytest

@pytest.mark.spec("runtime.state.1")
def test_state(runtime):
    runtime.call("state", "c1", check=False)
    assert {state_ok}

@pytest.mark.spec("runtime.start.1")
def test_start(runtime):
    call = runtime.call("start", "c1", check=False)
    assert call.returncode == {start_exit}, "start was refused"

@pytest.mark.spec("runtime.delete.3")
def test_delete(runtime):
    runtime.call("delete", "c1", check=False)
"""


def write_tests(pytester: pytest.Pytester, state_ok: bool = True, start_exit: int = 0) -> None:
    pytester.makepyfile(test_gate=TESTS.format(state_ok=state_ok, start_exit=start_exit))


@pytest.fixture
def fake(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OCI_RUNTIME", "RUNTIME", "CI"):
        monkeypatch.delenv(name, raising=False)
    path = pytester.path / "fake-runtime"
    path.write_text(FAKE)
    path.chmod(0o755)
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def reports(pytester: pytest.Pytester) -> list[str]:
    out = pytester.path / "out"
    return [
        f"--tap-report={out / 'r.tap'}",
        f"--jsonl-report={out / 'r.jsonl'}",
        f"--summary-report={out / 'r.md'}",
        f"--html-report={out / 'r.html'}",
    ]


def test_every_report_is_written_and_a_failure_exits_1(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    result = run(pytester, f"--runtime={fake}", *reports(pytester))
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = pytester.path / "out"
    rows = {json.loads(line)["nodeid"].split("::")[1]: json.loads(line)
            for line in (out / "r.jsonl").read_text().splitlines()}  # fmt: skip
    start = rows["test_start"]
    assert start["verdict"] == "failed" and start["spec"] == ["runtime.start.1"]
    argv = [c["argv"] for c in start["calls"]]
    assert argv[0][0] == str(fake) and argv[0][-2:] == ["start", "c1"]
    assert start["calls"][0]["exit"] == 3 and "fake: refusing" in start["calls"][0]["stderr"]
    assert rows["test_state"]["verdict"] == "met"
    tap = (out / "r.tap").read_text()
    assert tap.startswith("TAP version 13\n") and tap.endswith("1..3\n")
    assert "not ok 2 - test_gate.py::test_start" in tap
    summary = (out / "r.md").read_text()
    assert "fake-runtime version 2.3.4: FAILED" in summary
    assert "breaks `runtime.start.1` ([runtime.md § Start]" in summary
    assert "runtime calls " in summary and "of the wall time" in summary
    page = (out / "r.html").read_text()
    assert "fake: refusing" in page and "runtime.md" in page
    result.stdout.fnmatch_lines(["bulkhead: Markdown summary written to *r.md"])


def test_all_met_exits_0(pytester: pytest.Pytester, fake: Path) -> None:
    write_tests(pytester, start_exit=3)
    result = run(pytester, f"--runtime={fake}", *reports(pytester))
    assert result.ret == pytest.ExitCode.OK
    assert ": met" in (pytester.path / "out" / "r.md").read_text().splitlines()[0]


def test_spec_id_selects_by_prefix_and_the_summary_lists_what_it_left_uncovered(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    summary = pytester.path / "s.md"
    result = run(pytester, f"--runtime={fake}", "--spec-id=runtime.state",
                 f"--summary-report={summary}")  # fmt: skip
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == pytest.ExitCode.OK
    text = summary.read_text()
    assert "### Selected requirements no collected test covers" in text
    assert "`runtime.state.2`" in text and "`runtime.state.1`" not in text.split("covers", 1)[1]


def test_spec_section_selects_by_section(pytester: pytest.Pytester, fake: Path) -> None:
    write_tests(pytester)
    result = run(pytester, f"--runtime={fake}", "--spec-section=runtime.md#delete",
                 "--spec-section=Start")  # fmt: skip
    result.assert_outcomes(passed=1, failed=1, deselected=1)


def test_an_unknown_spec_id_is_a_usage_error(pytester: pytest.Pytester, fake: Path) -> None:
    write_tests(pytester)
    result = run(pytester, f"--runtime={fake}", "--spec-id=runtime.nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no runtime-spec 1.3.0 requirement matches --spec-id runtime.nope" in (
        result.stderr.str()
    )


def test_no_expectations_applies_none_and_excludes_a_file(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    strict = pytester.path / "e.toml"
    strict.write_text(
        '[[expect]]\ntest = "test_gate.py::test_start"\nreason = "r"\nspec = "runtime.start.1"\n'
    )
    with_file = run(pytester, f"--runtime={fake}", f"--expectations={strict}")
    with_file.assert_outcomes(passed=2, xfailed=1)
    result = run(pytester, f"--runtime={fake}", "--no-expectations")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["bulkhead: expectations: none applied (--no-expectations: strict)"]
    )
    both = run(pytester, f"--runtime={fake}", "--no-expectations", f"--expectations={strict}")
    assert both.ret == pytest.ExitCode.USAGE_ERROR


def test_a_baseline_passes_today_fails_a_new_failure_and_reports_a_fix(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    baseline = pytester.path / "baseline.toml"
    first = run(pytester, f"--runtime={fake}", f"--write-expectations={baseline}")
    assert first.ret == pytest.ExitCode.TESTS_FAILED  # writing a baseline changes no verdict
    text = baseline.read_text()
    assert 'test = "test_gate.py::test_start"' in text and 'versions = ">=2.3.4"' in text
    assert "fake-runtime 2.3.4" in text
    # Adopted: today's failure is expected, the gate is green.
    adopted = run(pytester, f"--runtime={fake}", f"--expectations={baseline}")
    adopted.assert_outcomes(passed=2, xfailed=1)
    assert adopted.ret == pytest.ExitCode.OK
    # A new failure fails the gate.
    write_tests(pytester, state_ok=False)
    worse = run(pytester, f"--runtime={fake}", f"--expectations={baseline}")
    worse.assert_outcomes(passed=1, failed=1, xfailed=1)
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    # A fixed test passes and is reported, so its entry can be removed.
    write_tests(pytester, start_exit=3)
    summary = pytester.path / "fixed.md"
    fixed = run(pytester, f"--runtime={fake}", f"--expectations={baseline}",
                f"--summary-report={summary}")  # fmt: skip
    fixed.assert_outcomes(passed=2, xpassed=1)
    assert fixed.ret == pytest.ExitCode.OK
    assert "### Fixed: expected to fail, now passing (1)" in summary.read_text()


def test_a_baseline_for_an_older_version_does_not_apply_to_a_newer_runtime(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    old = pytester.path / "old.toml"
    old.write_text(
        '[[expect]]\ntest = "test_gate.py::test_start"\nreason = "r"\nspec = "runtime.start.1"\n'
        'versions = "<2.0"\n'
    )
    result = run(pytester, f"--runtime={fake}", f"--expectations={old}")
    result.assert_outcomes(passed=2, failed=1)  # 2.3.4 is outside <2.0: not expected to fail


def test_under_xdist_the_calls_reach_the_controllers_reports(
    pytester: pytest.Pytester, fake: Path
) -> None:
    write_tests(pytester)
    jsonl = pytester.path / "x.jsonl"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", f"--runtime={fake}", f"--jsonl-report={jsonl}",
        str(pytester.path),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 3
    assert all(row["calls"] for row in rows)
    assert {row["verdict"] for row in rows} == {"met", "failed"}


def test_without_report_options_no_calls_are_attached(
    pytester: pytest.Pytester, fake: Path
) -> None:
    # The attachment costs a little per test: only a run that asks for a report pays it.
    pytester.makeconftest(
        """
        def pytest_runtest_logreport(report):
            if report.when == "teardown" and hasattr(report, "bulkhead_calls"):
                raise AssertionError("calls attached")
        """
    )
    write_tests(pytester, start_exit=3)
    run(pytester, f"--runtime={fake}").assert_outcomes(passed=3)
