"""The plugin, installed but not asked for, stays out of other projects' way.

Every pytest run in an environment where Bulkhead is installed loads it (a ``pytest11`` entry
point). These tests run pytest in a subprocess on tiny foreign projects (nothing of Bulkhead's in
them) and check that their Hypothesis settings, their output and their imports are what they
would be without Bulkhead; and that importing the plugin costs next to nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# A foreign project with a Hypothesis profile of its own, loaded in its conftest.
FOREIGN_CONFTEST = """
from hypothesis import settings

settings.register_profile("foreign", max_examples=13, deadline=1234)
settings.load_profile("foreign")
"""

FOREIGN_PROPERTIES = """
from datetime import timedelta

from hypothesis import given, settings, strategies as st

SEEN = []


@given(st.integers())
def test_property(n):
    SEEN.append(n)


def test_its_settings_are_its_own():
    assert settings.get_current_profile_name() == "{profile}"
    assert settings.default.max_examples == {examples}
    assert settings.default.deadline == timedelta(milliseconds={deadline})
    assert test_property._hypothesis_internal_use_settings.max_examples == {examples}
    assert len(SEEN) == {examples}
"""

# Loaded by the foreign run: nothing of this may be imported when no Bulkhead test runs.
HEAVY = (
    "pydantic",
    "jsonschema",
    "pyroute2",
    "hypothesis",
    "bulkhead._sys",
    "bulkhead.spec",
    "bulkhead.suite",
    "bulkhead.runtime",
    "bulkhead.containers",
)

FOREIGN_PLAIN = f"""
import sys
from pathlib import Path


def test_plain():
    loaded = [m for m in {HEAVY!r} if m in sys.modules]
    assert loaded == [], loaded
"""


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OCI_RUNTIME", "RUNTIME", "CI", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)


def _bulkhead_lines(result: pytest.RunResult) -> list[str]:
    return [
        line
        for line in result.outlines + result.errlines
        if "bulkhead:" in line or "runtime calls" in line
    ]


def test_a_foreign_hypothesis_profile_is_left_as_the_project_set_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(
        test_foreign=FOREIGN_PROPERTIES.format(profile="foreign", examples=13, deadline=1234)
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert _bulkhead_lines(result) == []


def test_hypothesis_defaults_stay_hypothesis_defaults(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No profile of the project's own: hypothesis's "default" (100 examples, 200 ms deadline),
    # not Bulkhead's 8 examples without a deadline.
    _clean_env(monkeypatch)
    pytester.makepyfile(
        test_foreign=FOREIGN_PROPERTIES.format(profile="default", examples=100, deadline=200)
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_foreign_ci_profile_is_hypothesis_own(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bulkhead's profiles used to be registered globally, its "ci" replacing hypothesis's own.
    _clean_env(monkeypatch)
    pytester.makepyfile(
        test_ci="""
        from hypothesis import settings

        def test_ci_profile():
            ci = settings.get_profile("ci")
            assert ci.max_examples == settings.get_profile("default").max_examples
            assert "bulkhead-dev" not in settings._profiles
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hypothesis-profile=ci")
    result.assert_outcomes(passed=1)


def test_a_plain_run_shows_nothing_of_bulkhead_and_imports_nothing_heavy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    pytester.makepyfile(
        test_plain=FOREIGN_PLAIN,
        # A marker named like ours: the project's own, not a spec id to count.
        test_failing=(
            "import pytest\n\n@pytest.mark.spec('their-own')\n"
            "def test_fails():\n    assert False, 'its own failure'\n"
        ),
    )
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={junit}")
    result.assert_outcomes(passed=1, failed=1)
    assert _bulkhead_lines(result) == []
    assert "bulkhead" not in junit.read_text()
    assert 'name="spec"' not in junit.read_text()
    # The same run without the plugin prints the same lines (timings aside).
    without = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:bulkhead", f"--junitxml={junit}"
    )

    def shape(r: pytest.RunResult) -> list[str]:
        return [
            re.sub(r"\d+\.\d+s", "T", line).strip("= ")
            for line in r.outlines
            if not line.startswith(("plugins:", "rootdir:", "platform", "- generated xml"))
        ]

    assert shape(result) == shape(without)


def test_a_foreign_test_sets_up_no_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leak sentinel is an autouse fixture that returns at once for foreign tests: it does
    # nothing, starts no suite and reads nothing of the host.
    _clean_env(monkeypatch)
    pytester.makepyfile(test_plain=FOREIGN_PLAIN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--setup-show")
    result.assert_outcomes(passed=1)
    assert "bulkhead_suite" not in result.stdout.str()


def _import_ms(code: str, module: str) -> float:
    """The cumulative import time of ``module`` (``-X importtime``), best of three runs: the
    first may compile sources (this machine sets PYTHONDONTWRITEBYTECODE)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    best = float("inf")
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        for line in done.stderr.splitlines():
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == module:
                best = min(best, int(parts[1]) / 1000)
    assert best != float("inf"), f"{module} not in the -X importtime output"
    return best


def test_importing_the_plugin_costs_under_50_ms() -> None:
    assert _import_ms("import bulkhead.plugin", "bulkhead.plugin") < 50


def test_what_pytest_loads_at_configure_costs_under_50_ms_and_nothing_heavy() -> None:
    # In a pytest run pytest is already imported; plugin.py then registers bulkhead.hooks.
    code = (
        "import pytest, sys, bulkhead.plugin, bulkhead.hooks; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _import_ms(code, "bulkhead.hooks") < 50
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


# --- our settings reach our tests, and only them ------------------------------------------------

MIXED = """
from datetime import timedelta

from hypothesis import given, settings, stateful, strategies as st

OURS, THEIRS, MACHINE = [], [], []


@given(n=st.integers())
def test_ours(runtime, n):
    OURS.append(n)


@given(n=st.integers())
def test_theirs(n):
    THEIRS.append(n)


class Machine(stateful.RuleBasedStateMachine):
    @stateful.rule()
    def step(self):
        pass

    def teardown(self):
        MACHINE.append(1)


def test_our_machine(runtime):
    # Settings built while the test runs (as test_lifecycle_model does) inherit ours.
    stateful.run_state_machine_as_test(Machine, settings=settings(stateful_step_count=2))


def test_counts():
    assert len(OURS) == {ours}, len(OURS)
    assert len(THEIRS) == {theirs}, len(THEIRS)
    assert len(MACHINE) == {ours}, len(MACHINE)
    assert settings.get_current_profile_name() == "{profile}"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the suite's fixtures need root")
def test_our_profile_applies_to_our_tests_and_no_other(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_runtime: Path
) -> None:
    _clean_env(monkeypatch)
    fake = fake_runtime
    pytester.makepyfile(test_mixed=MIXED.format(ours=8, theirs=100, profile="default"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--runtime={fake}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["bulkhead: property tests: hypothesis profile bulkhead-dev for Bulkhead's tests only*"]
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the suite's fixtures need root")
def test_a_profile_given_on_the_command_line_is_respected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_runtime: Path
) -> None:
    _clean_env(monkeypatch)
    fake = fake_runtime
    pytester.makeconftest(
        "from hypothesis import settings\n"
        "settings.register_profile('mine', max_examples=5, deadline=None)\n"
    )
    pytester.makepyfile(test_mixed=MIXED.format(ours=5, theirs=5, profile="mine"))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--runtime={fake}", "--hypothesis-profile=mine"
    )
    result.assert_outcomes(passed=4)
    # Ours by name: registered only because it was asked for; it then holds for the run.
    pytester.makepyfile(test_mixed=MIXED.format(ours=100, theirs=100, profile="bulkhead-thorough"))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--runtime={fake}", "--hypothesis-profile=bulkhead-thorough"
    )
    result.assert_outcomes(passed=4)
