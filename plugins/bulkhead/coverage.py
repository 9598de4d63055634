"""Which requirements the installed suite's tests name, read from their ``spec(...)`` markers.

The modules are parsed, not imported (no pytest, no fixtures, nothing run): every call of
``<...>.mark.spec("id", ...)`` in a module of the conformance package counts, on a function, a
class, a module's ``pytestmark`` or a ``pytest.param(..., marks=...)``. A module whose marks
take an id from a variable (a table of cases, ``mark.spec(req, ...)``) names every string
constant in it that has the shape of a requirement id: the table is where those ids are written.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from pathlib import Path


def suite_dir() -> Path | None:
    """Where the installed ``conformance`` package lives (found, not imported)."""
    try:
        spec = importlib.util.find_spec("conformance")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_spec_mark(func: ast.expr) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "spec"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "mark"
    )


def _id_shaped(value: str) -> bool:
    # "<file>.<section>.<n or name>": three or more dotted parts, lower case, no spaces.
    return value.count(".") >= 2 and value == value.strip().lower() and " " not in value


def ids_in_source(text: str) -> set[str]:
    found: set[str] = set()
    tree = ast.parse(text)
    computed = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_spec_mark(node.func):
            for a in node.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    found.add(a.value)
                else:
                    computed = True
    if computed:
        found.update(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _id_shaped(node.value)
        )
    return found


def named_ids(directory: Path | None = None) -> set[str]:
    """Every requirement id a test module of the suite names."""
    directory = directory if directory is not None else suite_dir()
    if directory is None:
        return set()
    found: set[str] = set()
    for module in sorted(directory.glob("test_*.py")):
        found |= ids_in_source(module.read_text())
    return found


def covered(core: Iterable[str], named: set[str]) -> set[str]:
    return {i for i in core if i in named}
