"""Rules every conformance test keeps, checked by reading the modules (no containers run).

- each test names the runtime-spec requirement ids it checks, and those ids exist in the
  requirement catalogue (when the catalogue is at hand);
- the suite never imports the reference runtime (it must judge it, not share its code);
- every bundled expectation names a test that exists.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from bulkhead import expectations

SUITE = Path(__file__).resolve().parent.parent / "conformance"
MODULES = sorted(SUITE.glob("test_*.py"))


def _catalogue() -> set[str] | None:
    env = os.environ.get("BULKHEAD_SPEC_CATALOGUE")
    candidates = [Path(env)] if env else []
    for parent in SUITE.parents:
        candidates.append(parent / "shared" / "research" / "spec-requirements.json")
    for path in candidates:
        if path.is_file():
            return {record["id"] for record in json.loads(path.read_text())}
    # Without the research file beside the checkout, the catalogue the package ships (made from
    # it by scripts/gen-requirements, and checked against it where both are at hand).
    from bulkhead import catalogue

    return set(catalogue.load()) or None


def _spec_ids(func: ast.FunctionDef) -> list[str] | None:
    for deco in func.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and isinstance(deco.func, ast.Attribute)
            and deco.func.attr == "spec"
        ):
            return [a.value for a in deco.args if isinstance(a, ast.Constant)]
    return None


def _marked_engine(node: ast.expr) -> bool:
    """``pytest.mark.engine``, alone or in a list (a module's ``pytestmark``)."""
    if isinstance(node, ast.List | ast.Tuple):
        return any(_marked_engine(e) for e in node.elts)
    return isinstance(node, ast.Attribute) and node.attr == "engine"


def _engine_module(tree: ast.Module) -> bool:
    """A full-stack module of the engine (test_engine_*.py with ``pytestmark =
    pytest.mark.engine``): its tests check the engine above the runtime, and only those that
    check something of the runtime-spec name requirement ids."""
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
        and _marked_engine(node.value)
        for node in tree.body
    )


def _tests() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for module in MODULES:
        tree = ast.parse(module.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found.append((module.name, node))
    return found


def test_the_suite_has_tests() -> None:
    assert len(_tests()) >= 40


@pytest.mark.parametrize(("module", "func"), _tests(), ids=lambda v: getattr(v, "name", v))
def test_every_conformance_test_names_its_spec_requirements(
    module: str, func: ast.FunctionDef
) -> None:
    ids = _spec_ids(func)
    if not ids and module.startswith("test_engine_"):
        assert _engine_module(ast.parse((SUITE / module).read_text())), (
            f"{module}::{func.name} names no requirement ids and its module is not marked engine"
        )
        return
    assert ids, f"{module}::{func.name} has no @pytest.mark.spec(...) naming requirement ids"
    catalogue = _catalogue()
    if catalogue is None:
        pytest.skip("spec-requirements.json not found; set BULKHEAD_SPEC_CATALOGUE")
    unknown = [i for i in ids if i not in catalogue]
    assert not unknown, f"{module}::{func.name} names ids not in the catalogue: {unknown}"


def test_the_suite_never_imports_the_reference_runtime() -> None:
    for module in [*MODULES, *sorted(SUITE.glob("_*.py"))]:
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "reference_runtime" for n in names), module.name


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_bundled_expectations_name_existing_tests(runtime: str) -> None:
    entries, _ = expectations.load(None, runtime)
    known = {f"{module}::{func.name}" for module, func in _tests()}
    for entry in entries:
        assert entry.test.split("[", 1)[0] in known, f"{runtime}.toml names {entry.test}"
