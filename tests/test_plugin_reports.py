"""What a runtime developer sees: failure reports, JUnit content, kept bundles, expectations by
version, and one usage error for a host or runtime that cannot run the suite.

The inner sessions use a fake runtime (a shell script that logs its argv and refuses every verb
but ``--version`` and ``delete``); tests that reach the suite's fixtures build real bundles (an
overlay mount, as root) but start no container.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bulkhead import suite as suite_module
from bulkhead.errors import SetupError
from bulkhead.host import probe_host

pytest_plugins = ["pytester"]

# The plugin imports its machinery lazily, inside the inner sessions; pytester forgets modules
# first imported there, so a later session would mix two copies of bulkhead.errors. Importing
# them here keeps one copy for the whole run.
import bulkhead.expectations  # noqa: E402
import bulkhead.report  # noqa: E402
import bulkhead.requirements  # noqa: E402
import bulkhead.suite  # noqa: E402, F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the suite's fixtures need root")

FAKE = r"""#!/bin/sh
echo "$0 $*" >> "$(dirname "$0")/calls.log"
for arg; do
    case "$arg" in
        --version) echo "fake-runtime version {version}"; exit 0 ;;
        delete) exit 0 ;;
    esac
done
echo "fake: refusing $*" >&2
exit 3
"""


def make_runtime(directory: Path, name: str = "fake-runtime", version: str = "9.9.1") -> Path:
    path = directory / name
    path.write_text(FAKE.replace("{version}", version))
    path.chmod(0o755)
    return path


@pytest.fixture
def fake(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OCI_RUNTIME", "RUNTIME", "CI"):
        monkeypatch.delenv(name, raising=False)
    return make_runtime(pytester.path)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def failure_text(junit: Path, name: str) -> str:
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("name") == name:
            return "\n".join((e.text or "") for e in case if e.tag in ("failure", "error"))
    raise AssertionError(f"no test case {name} in {junit}")


# --- the report of a failed test ---------------------------------------------------------------

FAILING = """
def test_refused(runtime, containers):
    with containers.bundle() as (cid, bundle):
        runtime.call("start", cid, check=False)
        (bundle.path / "stdout").write_text("the container said this\\n")
    assert False, "judged after the block"

def test_passes(runtime, containers):
    with containers.bundle() as (cid, bundle):
        runtime.call("start", cid, check=False)
"""


def test_the_junit_failure_carries_calls_stdio_and_config(
    pytester: pytest.Pytester, fake: Path
) -> None:
    pytester.makepyfile(test_fail=FAILING)
    junit = pytester.path / "junit.xml"
    result = run(pytester, f"--runtime={fake}", f"--junitxml={junit}")
    result.assert_outcomes(passed=1, failed=1)
    text = failure_text(junit, "test_refused")
    # The call the test made: argv, exit code, stderr, duration.
    assert f"$ {fake} --root " in text
    assert " start bh-" in text
    assert "exit 3 after" in text and " ms" in text
    assert "stderr: fake: refusing" in text
    # The factory's delete --force is there, marked as cleanup, after the test's own call.
    lines = text.splitlines()
    delete = next(i for i, line in enumerate(lines) if " delete --force " in line)
    assert lines[delete].endswith("(cleanup)")
    start = next(i for i, line in enumerate(lines) if " start bh-" in line)
    assert start < delete
    # The container's stdio and config.json.
    assert "stdout: the container said this" in text
    assert '"ociVersion": "1.0.2"' in text and '"namespaces": [' in text
    # The terminal shows the same.
    result.stdout.fnmatch_lines(["*- runtime calls (fake-runtime) -*", "*- containers -*"])
    assert failure_text(junit, "test_passes") == ""


def test_under_given_only_the_final_examples_calls_are_shown(
    pytester: pytest.Pytester, fake: Path
) -> None:
    pytester.makepyfile(
        test_given="""
        from hypothesis import given, strategies as st

        @given(n=st.integers(0, 50))
        def test_property(runtime, n):
            runtime.call("start", f"example-{n}", check=False)
            assert n < 7
        """
    )
    junit = pytester.path / "junit.xml"
    result = run(pytester, f"--runtime={fake}", f"--junitxml={junit}")
    result.assert_outcomes(failed=1)
    text = failure_text(junit, "test_property")
    # Hypothesis shrinks to n == 7 and runs that example last: its call alone is shown.
    calls = [line for line in text.splitlines() if line.startswith("$ ")]
    assert len(calls) == 1 and calls[0].endswith(" start example-7"), calls
    assert "(the final hypothesis example only:" in text


def test_a_state_poll_is_shown_once_with_its_count(pytester: pytest.Pytester, fake: Path) -> None:
    pytester.makepyfile(
        test_poll="""
        def test_polls(runtime):
            for _ in range(5):
                runtime.call("state", "c1", check=False)
            runtime.call("kill", "c1", check=False)
            assert False
        """
    )
    junit = pytester.path / "junit.xml"
    run(pytester, f"--runtime={fake}", f"--junitxml={junit}").assert_outcomes(failed=1)
    text = failure_text(junit, "test_polls")
    calls = [line for line in text.splitlines() if line.startswith("$ ")]
    assert len(calls) == 2 and calls[0].endswith(" state c1"), calls
    assert "(the same call 5 times in a row, same answer;" in text
    assert " kill c1" in text


# --- --keep-failed ---------------------------------------------------------------------------

KEEPING = """
import pytest

def test_fails_after_the_block(containers):
    with containers.bundle() as (cid, bundle):
        (bundle.upper / "written").write_text("by the test")
    assert False, "after the block"

def test_passes(containers):
    with containers.bundle() as (cid, bundle):
        pass

def test_skips(containers):
    with containers.bundle() as (cid, bundle):
        pass
    pytest.skip("a host fact")

def test_leaks(bulkhead_suite, containers):
    with containers.bundle() as (cid, bundle):
        pass
    # A state directory carrying the session's token: the sentinel fails the test.
    (bulkhead_suite.runtime_root / (bulkhead_suite.token + "leaked")).mkdir()
"""


def test_keep_failed_keeps_exactly_the_failed_tests_bundles_and_names_them(
    pytester: pytest.Pytester, fake: Path
) -> None:
    pytester.makepyfile(test_keep=KEEPING)
    junit = pytester.path / "junit.xml"
    result = run(pytester, f"--runtime={fake}", "--keep-failed", f"--junitxml={junit}", "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=1, errors=1)

    def kept(name: str) -> list[Path]:
        text = failure_text(junit, name)
        if "- kept bundles -" not in text:
            return []
        block = text.split("- kept bundles -", 1)[1].split("\n", 1)[1]
        return [Path(line) for line in block.splitlines() if line.startswith("/")]

    after_block = kept("test_fails_after_the_block")
    leaked = kept("test_leaks")  # the sentinel's failure keeps the bundle too
    try:
        assert len(after_block) == 1
        assert (after_block[0] / "overlay" / "upper" / "written").read_text() == "by the test"
        assert (after_block[0] / "config.json").is_file()
        assert len(leaked) == 1 and leaked[0].is_dir()
        bundles = after_block[0].parent
        assert sorted(bundles.iterdir()) == sorted(after_block + leaked)  # no other bundle stayed
        # Nothing is left mounted.
        assert str(bundles) not in Path("/proc/self/mountinfo").read_text()
    finally:
        # Kept on purpose for a person to read; this test is that person, and is done.
        for path in after_block + leaked:
            shutil.rmtree(path.parent.parent, ignore_errors=True)


# --- errors say what was observed --------------------------------------------------------------


def test_a_wait_for_timeout_names_the_last_status_and_the_containers_stderr(
    pytester: pytest.Pytester, fake: Path
) -> None:
    # The fake answers ``state`` with a running container whatever happens.
    stateful = pytester.path / "stateful-runtime"
    stateful.write_text(
        "#!/bin/sh\n"
        'for a; do case "$a" in\n'
        "  --version) echo 'stateful 1.0'; exit 0 ;;\n"
        '  state) echo \'{"ociVersion":"1.0.2","id":"x","status":"running",'
        '"pid":4242,"bundle":"/b"}\'; exit 0 ;;\n'
        "  create|start|delete) exit 0 ;;\n"
        "esac; done\nexit 3\n"
    )
    stateful.chmod(0o755)
    pytester.makepyfile(
        test_wait="""
        def test_waits(containers):
            with containers.container() as ctr:
                (ctr.bundle.path / "stderr").write_text("init: cannot exec: no such file\\n")
                ctr.wait_for("stopped", timeout=0.2)
        """
    )
    result = run(pytester, f"--runtime={stateful}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*TimeoutError: timed out after 0.2 s waiting for container bh-*-1 to be stopped; "
            "last status seen: running (pid 4242); container stderr (*/stderr): "
            "init: cannot exec: no such file*"
        ]
    )


# --- problems that stop every test: one usage error --------------------------------------------

USES_SUITE = """
from pathlib import Path

def test_one(containers):
    Path("body-ran").touch()

def test_two(runtime):
    Path("body-ran").touch()
"""


def test_a_host_that_cannot_run_the_suite_is_one_usage_error_listing_every_reason(
    pytester: pytest.Pytester, fake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    poor = dataclasses.replace(probe_host(), is_root=False, overlay=False)
    monkeypatch.setattr(suite_module, "probe_host", lambda: poor)

    def no_busybox() -> None:
        raise SetupError("busybox not found: install Debian's busybox-static")

    monkeypatch.setattr(suite_module, "build_rootfs", no_busybox)
    pytester.makepyfile(test_suite=USES_SUITE)
    result = run(pytester, f"--runtime={fake}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert error.count("bulkhead cannot run the conformance suite on this host") == 1
    assert "needs root" in error
    assert "overlayfs is not available" in error
    assert "busybox not found" in error
    assert not (pytester.path / "body-ran").exists()
    assert "ERROR test_suite" not in result.stdout.str()


def test_a_runtime_that_cannot_be_executed_is_a_usage_error(
    pytester: pytest.Pytester, fake: Path
) -> None:
    garbage = pytester.path / "not-a-program"
    garbage.write_bytes(b"\x7fELF garbage, not a program")
    garbage.chmod(0o755)
    pytester.makepyfile(test_suite=USES_SUITE)
    result = run(pytester, f"--runtime={garbage}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--runtime {garbage}: {garbage} cannot be run: Exec format error" in (
        result.stderr.str()
    )
    assert not (pytester.path / "body-ran").exists()


def test_under_xdist_a_missing_runtime_is_one_usage_error_not_an_internal_error(
    pytester: pytest.Pytester, fake: Path
) -> None:
    pytester.makepyfile(test_suite=USES_SUITE)
    missing = pytester.path / "nowhere"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", f"--runtime={missing}", str(pytester.path)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--runtime {missing}: no such file" in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


# --- the runtime's path -------------------------------------------------------------------------


def test_a_symlinked_runtime_is_run_through_its_own_name(
    pytester: pytest.Pytester, fake: Path
) -> None:
    # crun runs as krun through a symlink: argv[0] decides, so the path is not resolved.
    link = pytester.path / "krun"
    link.symlink_to(fake.name)
    pytester.makepyfile(
        test_link="""
        def test_calls(runtime):
            runtime.call("start", "c1", check=False)
        """
    )
    result = run(pytester, f"--runtime={link}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"bulkhead: runtime {link} (fake-runtime version 9.9.1)"])
    logged = (pytester.path / "calls.log").read_text().splitlines()
    assert any(line.startswith(f"{link} --root ") and line.endswith("start c1") for line in logged)


def test_reference_is_the_console_script_beside_the_interpreter(
    pytester: pytest.Pytester, fake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = pytester.path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setattr("sys.executable", str(bin_dir / "python"))
    pytester.makepyfile("def test_plain(): pass")
    result = run(pytester, "--runtime=reference")
    result.stdout.fnmatch_lines(
        ["bulkhead: runtime reference (--runtime reference: *no executable bulkhead-runtime*)"]
    )
    pytester.makepyfile(test_suite=USES_SUITE)
    missing = run(pytester, "--runtime=reference", "test_suite.py")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert f"looked for {bin_dir / 'bulkhead-runtime'}" in missing.stderr.str()

    make_runtime(bin_dir, "bulkhead-runtime", "0.1.0")
    found = run(pytester, "--runtime=reference", "test_plain.py")
    found.stdout.fnmatch_lines(
        [f"bulkhead: runtime {bin_dir / 'bulkhead-runtime'} (fake-runtime version 0.1.0)"]
    )


# --- expectations by version -------------------------------------------------------------------

VERSIONED = """
[[expect]]
test = "test_versioned.py::test_fixed_in_newer_releases"
reason = "deviated in the 1.8 series"
spec = "config-linux.namespaces.8"
versions = ">=1.8.0, <1.9"

[[expect]]
test = "test_versioned.py::test_still_deviates"
reason = "deviates in every release"
spec = "runtime.delete.3"

[[expect]]
test = "test_versioned.py::test_renamed_away"
reason = "stale"
spec = "runtime.kill.1"
"""

VERSIONED_TESTS = """
def test_fixed_in_newer_releases():
    pass

def test_still_deviates():
    assert False
"""


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["alone", "xdist"])
def test_an_expectation_for_other_versions_is_not_applied_and_said_so(
    pytester: pytest.Pytester, fake: Path, dist: list[str]
) -> None:
    newer = make_runtime(pytester.path, "crun", "1.27.0")  # crun as a newer release would be
    (pytester.path / "exp.toml").write_text(VERSIONED)
    pytester.makepyfile(test_versioned=VERSIONED_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--runtime={newer}", "--expectations=exp.toml", *dist
    )
    # The fixed test passes instead of being a strict XPASS that fails the run.
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "bulkhead: expectations: exp.toml (3 entries, 2 apply to 1.27.0)",
            "bulkhead: expectations not applied to * 1.27.0 (written for other versions): "
            "test_versioned.py::test_fixed_in_newer_releases (>=1.8.0, <1.9)",
            "bulkhead: expectations that matched no collected test: "
            "test_versioned.py::test_renamed_away",
        ]
    )
    assert "test_fixed_in_newer_releases" not in result.stdout.str().split("matched no")[1]


def test_an_expectation_for_the_runtimes_version_is_applied(
    pytester: pytest.Pytester, fake: Path
) -> None:
    older = make_runtime(pytester.path, "crun", "crun version 1.8.1\ncommit: abc")
    (pytester.path / "exp.toml").write_text(VERSIONED)
    pytester.makepyfile(test_versioned=VERSIONED_TESTS)
    result = run(pytester, f"--runtime={older}", "--expectations=exp.toml", "-rX")
    result.assert_outcomes(failed=1, xfailed=1)  # the 1.8 entry holds: XPASS(strict) fails
    result.stdout.fnmatch_lines(["*XPASS(strict)*deviated in the 1.8 series*>=1.8.0, <1.9*"])


def test_under_xdist_an_unknown_requirement_fails_its_test_with_the_reason(
    pytester: pytest.Pytester, fake: Path
) -> None:
    # The workers collect; a usage error raised there would be an INTERNALERROR of the controller.
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.requires("no-such-thing")
        def test_typo():
            pass

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", f"--runtime={fake}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_typo.py::test_typo: unknown requirement 'no-such-thing'*"])
    assert "INTERNALERROR" not in result.stdout.str()
