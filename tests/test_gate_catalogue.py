"""The requirements data shipped in the package: it matches the research catalogue it was derived
from (when that is at hand), and selection by id prefix and by section."""

from __future__ import annotations

import importlib.util
import json
import os
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from bulkhead import catalogue, coverage

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen-requirements"


def _research() -> Path | None:
    env = os.environ.get("BULKHEAD_SPEC_CATALOGUE")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "research" / "spec-requirements.json" for p in ROOT.parents]
    return next((p for p in candidates if p.is_file()), None)


def _generator():  # type: ignore[no-untyped-def]
    loader = SourceFileLoader("gen_requirements", str(GENERATOR))
    spec = importlib.util.spec_from_loader("gen_requirements", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_shipped_file_is_what_the_generator_makes_of_the_research_catalogue() -> None:
    source = _research()
    if source is None:
        pytest.skip("spec-requirements.json not found; set BULKHEAD_SPEC_CATALOGUE")
    gen = _generator()
    expected = gen.render(gen.derive(json.loads(source.read_text())))
    shipped = (ROOT / "plugins" / "bulkhead" / "data" / "requirements.json").read_text()
    assert shipped == expected, "run scripts/gen-requirements and commit the result"


def test_core_is_the_runtime_and_hook_musts_stated_once_in_words() -> None:
    gen = _generator()
    base = {"subject": "runtime", "level": "MUST", "testable": True, "form": "sentence"}
    assert gen.is_core(base)
    assert gen.is_core({**base, "subject": "hook", "level": "MUST NOT"})
    assert not gen.is_core({**base, "subject": "config"})
    assert not gen.is_core({**base, "level": "SHOULD"})
    assert not gen.is_core({**base, "testable": False})
    assert not gen.is_core({**base, "form": "implied"})
    assert not gen.is_core({**base, "duplicate_of": "runtime.state.1"})


def test_requirements_load_from_the_package_with_section_and_link() -> None:
    reqs = catalogue.load()
    state = reqs["runtime.state.1"]
    assert state.file == "runtime.md" and state.section == "State"
    assert state.where == "runtime.md § State"
    assert state.url.endswith("/v1.3.0/runtime.md#state")
    assert 150 < len(catalogue.core()) < len(reqs)
    assert all(r.core for r in catalogue.core().values())


def test_an_id_prefix_matches_at_a_dot_only() -> None:
    assert catalogue.matches_id("config-linux.seccomp.3", "config-linux.seccomp")
    assert catalogue.matches_id("config-linux.seccomp.3", "config-linux.seccomp.")
    assert catalogue.matches_id("runtime.state.1", "runtime.state.1")
    assert not catalogue.matches_id("runtime.state.10", "runtime.state.1")
    assert not catalogue.matches_id("config-linux.seccompx.1", "config-linux.seccomp")


def test_select_by_id_and_section_is_the_union() -> None:
    by_id = catalogue.select(ids=["runtime.delete"])
    assert by_id and all(i.startswith("runtime.delete.") for i in by_id)
    by_title = catalogue.select(sections=["Delete"])
    by_anchor = catalogue.select(sections=["runtime.md#delete"])
    assert by_title == by_anchor == by_id
    whole_file = catalogue.select(sections=["runtime-linux.md"])
    assert whole_file == {i for i, r in catalogue.load().items() if r.file == "runtime-linux.md"}
    assert catalogue.select(ids=["runtime.delete"], sections=["runtime-linux.md"]) == (
        by_id | whole_file
    )


def test_a_selection_that_matches_nothing_names_every_bad_value() -> None:
    with pytest.raises(ValueError, match=r"--spec-id runtime\.nope, --spec-section Nowhere"):
        catalogue.select(ids=["runtime.nope", "runtime.state"], sections=["Nowhere"])


def test_in_order_follows_the_spec_and_puts_unknown_ids_last() -> None:
    assert catalogue.in_order(["zz.unknown", "runtime.state.2", "runtime.state.1"]) == [
        "runtime.state.1",
        "runtime.state.2",
        "zz.unknown",
    ]


def test_coverage_reads_spec_markers_without_importing(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.spec('runtime.kill.1')\n"
        "@pytest.mark.spec('runtime.state.1', 'runtime.state.2')\n"
        "def test_x(): raise SystemExit('never imported')\n"
        "@pytest.mark.parametrize(\n"
        "    'v', [pytest.param(1, marks=pytest.mark.spec('runtime.start.1'))]\n"
        ")\n"
        "def test_y(v): pass\n"
        "# runtime.delete.1 in a comment does not count\n"
    )
    (tmp_path / "_helper.py").write_text(
        "import pytest\nM = pytest.mark.spec('runtime.create.1')\n"
    )
    assert coverage.named_ids(tmp_path) == {
        "runtime.kill.1",
        "runtime.state.1",
        "runtime.state.2",
        "runtime.start.1",
    }


def test_the_installed_suite_names_core_requirements() -> None:
    named = coverage.named_ids()
    assert coverage.suite_dir() == ROOT / "conformance"
    assert len(coverage.covered(catalogue.core(), named)) > 100
