"""The gate other projects drop into their CI: the GitHub action's own steps run here with the
GitHub variables pointed at temporary files, and the action, the example workflow and the GitLab
component are checked against the published schemas (check-jsonschema's vendored copies, so the
check works offline)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "ci" / "github" / "action.yml"
WORKFLOW = ROOT / "ci" / "github" / "example-workflow.yml"
COMPONENT = ROOT / "ci" / "gitlab" / "templates" / "conformance.yml"
VENV = Path(sys.executable).parent.parent
CHECK = shutil.which("check-jsonschema", path=str(VENV / "bin"))
# check-jsonschema reads YAML with ruamel.yaml; the tests read it the same way.
_yaml = pytest.importorskip("ruamel.yaml", reason="the dev extra's check-jsonschema brings it")


def load_yaml(text: str) -> Any:
    return _yaml.YAML(typ="safe", pure=True).load(text)


def check_schema(schema: str, *files: Path) -> None:
    if CHECK is None:
        pytest.skip("check-jsonschema is not installed (the dev extra has it)")
    done = subprocess.run(
        [CHECK, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_and_the_example_workflow_match_their_schemas() -> None:
    check_schema("vendor.github-actions", ACTION)
    check_schema("vendor.github-workflows", WORKFLOW)


def test_the_gitlab_component_matches_the_schema(tmp_path: Path) -> None:
    # A component is two YAML documents: the `spec:` header, then the jobs.
    header, jobs = COMPONENT.read_text().split("\n---\n")
    (tmp_path / "header.yml").write_text(header)
    (tmp_path / "jobs.yml").write_text(jobs)
    check_schema("vendor.gitlab-ci", tmp_path / "header.yml", tmp_path / "jobs.yml")
    # The vendored schema is lax about the header: hold its inputs to GitLab's keys.
    inputs = load_yaml(header)["spec"]["inputs"]
    allowed = {"description", "default", "options", "type", "regex"}
    assert all(set(spec) <= allowed for spec in inputs.values()), inputs
    used = set(re.findall(r"\$\[\[ inputs\.([\w-]+) \]\]", jobs))
    assert used == set(inputs), f"inputs used {sorted(used)}, declared {sorted(inputs)}"
    job = load_yaml(jobs)["bulkhead-conformance"]
    assert job["artifacts"]["reports"]["junit"] == "bulkhead-reports/junit.xml"


def _action() -> dict[str, Any]:
    data = load_yaml(ACTION.read_text())
    assert isinstance(data, dict)
    return data


def run_step(
    step: dict[str, Any], inputs: dict[str, str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Runs one `run:` step of the composite action as the runner would: its `env` with the
    `${{ inputs.* }}` expressions filled in, bash, GITHUB_ACTION_PATH set."""

    def fill(value: str) -> str:
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], value)

    step_env = {k: fill(str(v)) for k, v in (step.get("env") or {}).items()}
    full_env = {**os.environ, **env, **step_env, "GITHUB_ACTION_PATH": str(ACTION.parent)}
    return subprocess.run(
        ["bash", "-c", step["run"]], env=full_env, capture_output=True, text=True, timeout=600
    )


def gate_step(name: str) -> dict[str, Any]:
    return next(s for s in _action()["runs"]["steps"] if s.get("name") == name)


@pytest.fixture
def github(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "output").write_text("")
    (tmp_path / "summary").write_text("")
    return {
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "RUNNER_TEMP": str(tmp_path),
        # The venv the install step makes (tested below); here, the one running this test.
        "BULKHEAD_VENV": str(VENV),
    }


def outputs(path: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines() if line)


def inputs_for(tmp_path: Path, runtime: str, args: str) -> dict[str, str]:
    return {
        "runtime": runtime,
        "pytest-args": args,
        "expectations": "",
        "report-dir": str(tmp_path / "reports"),
    }


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_the_run_step_passes_a_runtime_and_reports(github: dict[str, str], tmp_path: Path) -> None:
    done = run_step(
        gate_step("Run the conformance suite"),
        inputs_for(tmp_path, "runc", "-k test_uts_namespace"),
        github,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = outputs(github["GITHUB_OUTPUT"])
    assert out["verdict"] == "met" and int(out["met"]) >= 3 and out["failed"] == "0", out
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.strip(), "nothing was written to the step summary"
    reports = tmp_path / "reports"
    for name in ("junit.xml", "summary.md", "results.jsonl", "results.tap", "report.html"):
        assert (reports / name).stat().st_size > 0, name


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_a_seeded_failure_fails_the_gate_naming_the_requirement(
    github: dict[str, str], tmp_path: Path
) -> None:
    # A runc that never makes a UTS namespace (scripts/broken-runtime's no-uts-ns mutant).
    github = {**github, "BULKHEAD_MUTANT": "no-uts-ns", "BULKHEAD_REAL_RUNTIME": "runc"}
    done = run_step(
        gate_step("Run the conformance suite"),
        inputs_for(tmp_path, str(ROOT / "scripts" / "broken-runtime"), "-k test_uts_namespace"),
        github,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = outputs(github["GITHUB_OUTPUT"])
    assert out["verdict"] == "failed" and int(out["failed"]) >= 1, out
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert "config-linux.namespaces.apply-ns-uts" in summary, summary


def test_the_install_step_installs_the_package(tmp_path: Path) -> None:
    # The checkout itself, without dependencies (fetching them is pip's business, and
    # scripts/wheel-check installs the whole wheel): the `bulkhead` command must answer.
    # From a copy: setuptools writes build/ and *.egg-info into the tree it builds from.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".venv", ".git", ".cache", "reports", "build", "*.egg-info",
                                  "__pycache__", ".hypothesis", ".*_cache")  # fmt: skip
    shutil.copytree(ROOT, source, ignore=skip, symlinks=True)
    venv = tmp_path / "bulkhead-venv"
    env = {"BULKHEAD_VENV": str(venv), "PIP_NO_DEPS": "1"}
    step = {**gate_step("Install Bulkhead"), "env": {"BULKHEAD_PACKAGE": str(source)}}
    # The venv from this interpreter (the runner's python3 would do the same).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = run_step(step, {}, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("bulkhead "), done.stdout
