"""The pytest plugin, driven through inner pytest sessions (pytester, in process).

No inner session starts a container: the runtime is either a path that does not exist or a fake
script that only answers ``--version`` (the report header asks for it), and no test that
reaches the suite's fixtures runs with a runtime that exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# The plugin imports its machinery lazily, inside the inner sessions; pytester forgets modules
# first imported there, so a later session would mix two copies of bulkhead.errors. Importing
# them here keeps one copy for the whole run.
import bulkhead.expectations  # noqa: E402
import bulkhead.report  # noqa: E402
import bulkhead.requirements  # noqa: E402
import bulkhead.suite  # noqa: E402, F401

OPTIONS = (
    "--runtime",
    "--runtime-arg",
    "--runtime-root",
    "--keep-failed",
    "--runtime-timeout",
    "--hide-cgroup2-controllers",
    "--spec-report",
    "--expectations",
    "--no-expectations",
    "--spec-profile",
    "--write-expectations",
    "--spec-id",
    "--spec-section",
    "--tap-report",
    "--jsonl-report",
    "--summary-report",
    "--html-report",
)
INI_KEYS = (
    "bulkhead_runtime",
    "bulkhead_runtime_args",
    "bulkhead_runtime_root",
    "bulkhead_keep_failed",
    "bulkhead_runtime_timeout",
    "bulkhead_hide_cgroup2_controllers",
    "bulkhead_spec_report",
    "bulkhead_expectations",
    "bulkhead_no_expectations",
    "bulkhead_spec_profile",
    "bulkhead_write_expectations",
    "bulkhead_spec_ids",
    "bulkhead_spec_sections",
    "bulkhead_tap_report",
    "bulkhead_jsonl_report",
    "bulkhead_summary_report",
    "bulkhead_html_report",
)
MISSING = "/nonexistent/runtime"

# A conformance-style test: it asks for the container factory, so the suite must be built.
USES_CONTAINERS = """
from pathlib import Path

def test_body(containers):
    Path("body-ran").touch()
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


# --- options and markers ----------------------------------------------------------------------


def test_help_lists_the_options_in_their_own_group(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    text = result.stdout.str()
    heading = "Bulkhead OCI runtime conformance:"
    assert heading in text
    group = text.split(heading, 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^  (--[\w-]+)", group, flags=re.MULTILINE)
    assert listed == list(OPTIONS)
    assert "{auto,yes,no}" in group


def test_help_lists_the_ini_keys(pytester: pytest.Pytester) -> None:
    text = run(pytester, "--help").stdout.str()
    for key in INI_KEYS:
        assert re.search(rf"^  {key} \(\w+\):", text, flags=re.MULTILINE), key


def test_markers_lists_spec_requires_and_cve(pytester: pytest.Pytester) -> None:
    text = run(pytester, "--markers").stdout.str()
    for marker in ("spec(*ids)", "requires(*names)", "cve(id)"):
        assert f"@pytest.mark.{marker}:" in text


def test_a_bad_hide_choice_is_refused_by_the_parser(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--hide-cgroup2-controllers=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'maybe'" in result.stderr.str()


def test_the_report_header_names_the_runtime_and_its_version(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = run(pytester, f"--runtime={fake_runtime}")
    result.stdout.fnmatch_lines([f"bulkhead: runtime {fake_runtime} (fake-runtime version 9.9)"])
    result.assert_outcomes(passed=1)


# --- requires(...) --------------------------------------------------------------------------------


def test_an_unknown_requirement_fails_collection_instead_of_skipping(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.requires("no-such-thing")
        def test_typo():
            pass
        """
    )
    result = run(pytester, f"--runtime={fake_runtime}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert "test_typo.py::test_typo" in error
    assert "unknown requirement 'no-such-thing'" in error
    assert "skipped" not in result.stdout.str()


def test_a_met_requirement_runs_the_test(pytester: pytest.Pytester, fake_runtime: Path) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.requires("root")
        def test_as_root():
            assert os.geteuid() == 0
        """
    )
    result = run(pytester, f"--runtime={fake_runtime}", "-rs")
    if os.geteuid() == 0:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*root: needs root (effective uid 0)*"])


def test_an_unmet_requirement_skips_with_the_reason(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requires("controller:no-such-controller")
        def test_needs_it():
            raise AssertionError("must not run")
        """
    )
    result = run(pytester, f"--runtime={fake_runtime}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*controller:no-such-controller: cgroup controller*"])


# --- the runtime option --------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["containers", "runtime"])
def test_a_missing_runtime_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester, fake_runtime: Path, fixture: str
) -> None:
    pytester.makepyfile(USES_CONTAINERS.replace("containers", fixture))
    result = run(pytester, f"--runtime={MISSING}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--runtime {MISSING}: no such file" in result.stderr.str()
    assert not (pytester.path / "body-ran").exists()


def test_tests_without_the_suites_fixtures_ignore_the_runtime(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    # The runtime cannot be found: building the suite (as the autouse leak sentinel would if
    # it engaged) would be a usage error, so passing shows these tests never touch it.
    pytester.makepyfile(
        """
        import pytest

        def test_plain(tmp_path):
            (tmp_path / "left-behind").mkdir()

        @pytest.mark.requires("root")
        def test_marked_only():
            pass

        def test_failing():
            raise AssertionError("its own failure")
        """
    )
    result = run(pytester, f"--runtime={MISSING}")
    root = os.geteuid() == 0
    result.assert_outcomes(passed=2 if root else 1, skipped=0 if root else 1, failed=1)
    assert "its own failure" in result.stdout.str()
    assert "left behind" not in result.stdout.str()
    assert "runtime calls" not in result.stdout.str()


# --- expectations ------------------------------------------------------------------------------

EXPECTATIONS = """
[[expect]]
test = "test_deviations.py::test_now_fixed"
reason = "used to deviate"
spec = "runtime.kill.1"

[[expect]]
test = "test_deviations.py::test_still_broken"
reason = "still deviates"
spec = "runtime.delete.3"
"""

DEVIATIONS = """
def test_now_fixed():
    pass

def test_still_broken():
    raise AssertionError("deviation")

def test_unlisted():
    pass
"""


def test_an_expectations_file_turns_the_named_tests_into_strict_xfails(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile(test_deviations=DEVIATIONS)
    expectations = pytester.path / "fake.toml"
    expectations.write_text(EXPECTATIONS)
    result = run(pytester, f"--runtime={fake_runtime}", f"--expectations={expectations}", "-rfxX")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        ["[[]XPASS(strict)[]] fake-runtime: used to deviate (spec runtime.kill.1)"]
    )
    result.stdout.fnmatch_lines(["FAILED test_deviations.py::test_now_fixed - *XPASS(strict)*"])
    result.stdout.fnmatch_lines(
        ["XFAIL test_deviations.py::test_still_broken*still deviates (spec runtime.delete.3)*"]
    )


def test_a_missing_expectations_file_is_a_usage_error(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = run(pytester, f"--runtime={fake_runtime}", "--expectations=nowhere.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--expectations nowhere.toml: no such file" in result.stderr.str()


# --- ini keys -------------------------------------------------------------------------------------


def test_the_runtime_ini_key_is_honoured(pytester: pytest.Pytester, fake_runtime: Path) -> None:
    pytester.makeini(f"[pytest]\nbulkhead_runtime = {MISSING}-from-ini\n")
    pytester.makepyfile(USES_CONTAINERS)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--runtime {MISSING}-from-ini: no such file" in result.stderr.str()
    assert not (pytester.path / "body-ran").exists()


def test_the_command_line_wins_over_the_ini_key(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makeini(f"[pytest]\nbulkhead_runtime = {MISSING}-from-ini\n")
    pytester.makepyfile(USES_CONTAINERS)
    result = run(pytester, f"--runtime={MISSING}-from-option")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{MISSING}-from-option: no such file" in result.stderr.str()
    assert "from-ini" not in result.stderr.str()


def test_the_expectations_ini_key_is_honoured(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    (pytester.path / "fake.toml").write_text(EXPECTATIONS)
    pytester.makeini(
        f"[pytest]\nbulkhead_runtime = {fake_runtime}\nbulkhead_expectations = fake.toml\n"
    )
    pytester.makepyfile(test_deviations=DEVIATIONS)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
