"""The docs site (mkdocs.yml over docs/) cannot drift from the code: every option the plugin and
the ``bulkhead`` command declare is documented (and nothing else is), the area pages are what
scripts/gen-docs-areas makes of the suite's markers, the node check's settings and the CI
matrix example match what they describe, and ``mkdocs build --strict`` passes."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bulkhead import cli, plugin

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPTIONS = DOCS / "options.md"
CLUSTER = DOCS / "cluster.md"
VENV_BIN = Path(sys.executable).parent


class _Group:
    def __init__(self, options: list[dict[str, Any]]) -> None:
        self.options = options

    def addoption(self, flag: str, **kw: Any) -> None:
        self.options.append({"flag": flag, **kw})


class _Parser:
    """Records what pytest_addoption declares, as pytest's parser would be told it."""

    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []
        self.ini: dict[str, str] = {}

    def getgroup(self, name: str, description: str = "") -> _Group:
        return _Group(self.options)

    def addini(self, name: str, help: str, type: str | None = None) -> None:
        self.ini[name] = help


def plugin_options() -> list[dict[str, Any]]:
    parser = _Parser()
    plugin.pytest_addoption(parser)  # type: ignore[arg-type]
    assert parser.options, "the plugin declared no option"
    for option in parser.options:
        assert option["dest"] in parser.ini, option  # every option has its ini key
    return parser.options


def documented_rows(text: str) -> dict[str, str]:
    """Table rows of options.md whose first cell starts with an option: flag -> row."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `(--[a-z0-9-]+)", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_plugin_option_is_documented_with_its_ini_key_and_choices() -> None:
    rows = documented_rows(OPTIONS.read_text())
    declared = plugin_options()
    for option in declared:
        row = rows.get(option["flag"])
        assert row is not None, f"{option['flag']} is not documented in docs/options.md"
        assert f"(`{option['dest']}`)" in row, f"{option['flag']}: ini key {option['dest']}"
        for choice in option.get("choices") or ():
            assert choice in row, f"{option['flag']}: choice {choice}"
    # Nothing documented that the plugin does not declare (hypothesis's option has its own
    # section, not a table row).
    stale = set(rows) - {o["flag"] for o in declared}
    assert not stale, f"docs/options.md documents options the plugin lacks: {sorted(stale)}"


def _argparse_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    }


def test_every_option_of_the_bulkhead_command_is_documented() -> None:
    parser = cli._parser()
    section = OPTIONS.read_text().split("## The `bulkhead` command", 1)[1]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for flag in _argparse_flags(parser):
        assert f"`bulkhead {flag}`" in section, flag
    for name, sub in subparsers.choices.items():
        row = next((line for line in section.splitlines() if f"`bulkhead {name}" in line), None)
        assert row is not None, f"bulkhead {name} is not documented"
        for flag in _argparse_flags(sub):
            assert flag in row.split("|")[1], f"bulkhead {name} {flag}"


def gen_docs_areas(*args: str) -> subprocess.CompletedProcess[str]:
    # The generator collects the installed suite in-process; run with this interpreter.
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-docs-areas"), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


def test_the_area_pages_are_generated_from_the_current_markers() -> None:
    done = gen_docs_areas("--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_stale_area_page_is_noticed(tmp_path: Path) -> None:
    # Control for the check above: a page edited by hand, and one left from a removed module.
    shutil.copytree(DOCS / "areas", tmp_path / "docs" / "areas")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "areas" / "uts_namespace.md"
    page.write_text(page.read_text().replace("config-linux.namespaces.7", "config.hostname.9"))
    (tmp_path / "docs" / "areas" / "gone.md").write_text("# test_gone\n")
    done = gen_docs_areas("--check", "--root", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stale: docs/areas/uts_namespace.md" in done.stdout, done.stdout
    assert "no longer generated: docs/areas/gone.md" in done.stdout, done.stdout
    # Regenerating there puts the page back and removes the other.
    assert gen_docs_areas("--root", str(tmp_path)).returncode == 0
    assert page.read_text() == (DOCS / "areas" / "uts_namespace.md").read_text()
    assert not (tmp_path / "docs" / "areas" / "gone.md").exists()


def test_every_area_page_names_its_tests_and_requirements() -> None:
    # The pages say what the suite's markers say: spot-check one module against its source.
    source = (ROOT / "conformance" / "test_uts_namespace.py").read_text()
    page = (DOCS / "areas" / "uts_namespace.md").read_text()
    for name in re.findall(r"^def (test_\w+)", source, re.MULTILINE):
        assert f"`{name}`" in page, name
    for spec_id in set(re.findall(r'"((?:config|runtime)[\w.-]+\.[\w-]+)"', source)):
        assert f"`{spec_id}`" in page, spec_id


def test_the_node_checks_settings_are_documented() -> None:
    header = (ROOT / "deploy" / "entrypoint.sh").read_text().split("\nset -eu\n", 1)[0]
    variables = set(re.findall(r"^#   ([A-Z_]+) ", header, re.MULTILINE))
    assert {"BULKHEAD_RUNTIME", "SONOBUOY_RESULTS_DIR"} <= variables, variables
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", CLUSTER.read_text(), re.MULTILINE))
    assert table == variables, (sorted(variables - table), sorted(table - variables))


def test_the_ci_matrix_example_is_a_valid_workflow_using_the_actions_inputs(
    tmp_path: Path,
) -> None:
    yaml = pytest.importorskip("ruamel.yaml", reason="the dev extra's check-jsonschema brings it")
    check = shutil.which("check-jsonschema", path=str(VENV_BIN))
    if check is None:
        pytest.skip("check-jsonschema is not installed (the dev extra has it)")
    section = CLUSTER.read_text().split("## A CI matrix", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None, "no yaml block in the CI matrix section"
    workflow = tmp_path / "matrix.yml"
    workflow.write_text(example.group(1))
    done = subprocess.run(
        [check, "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    load = yaml.YAML(typ="safe", pure=True).load
    action = load((ROOT / "ci" / "github" / "action.yml").read_text())
    steps = load(example.group(1))["jobs"]["conformance"]["steps"]
    gate = next(s for s in steps if "ci/github@" in s.get("uses", ""))
    assert set(gate["with"]) <= set(action["inputs"]), set(gate["with"]) - set(action["inputs"])


def test_the_site_builds_strictly() -> None:
    if not (VENV_BIN / "mkdocs").exists():
        pytest.skip("mkdocs is not installed (the dev extra has mkdocs and mkdocs-material)")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(ROOT / "scripts" / "docs-build")], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
