"""The launcher's archive of compiled modules (codearchive.py): it serves the package's modules,
never stale code, and nothing at all when written by another interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reference_runtime import codearchive


@pytest.fixture
def package(tmp_path: Path) -> Path:
    pkg = tmp_path / "src" / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "engine").mkdir()
    (pkg / "__init__.py").write_text('"""The package."""\nVALUE = 1\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text(
        textwrap.dedent('''\
        """A module docstring."""
        def f():
            """Only a docstring."""
        def g():
            assert False, "assertions stay"
        WHERE = __file__
        ''')
    )
    (pkg / "engine" / "skipped.py").write_text("X = 1\n")
    return pkg


def _run(archive: Path, root: Path, program: str) -> str:
    """``program`` in a fresh interpreter with the archive installed and ``root`` on the path."""
    script = archive.parent / "program.py"
    here = str(Path(codearchive.__file__).parents[1])
    script.write_text(f"import sys\nsys.path.insert(0, {here!r})\n"
                      "from reference_runtime import codearchive\n"
                      f"sys.path.insert(0, {str(root)!r})\n"
                      f"print(codearchive.install({str(archive)!r}))\n{program}\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-IS", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_it_serves_the_packages_modules_without_docstrings(package: Path, tmp_path: Path) -> None:
    archive = tmp_path / "demo.codes"
    assert codearchive.build(str(package), str(archive)) == 3, "demo, demo.sub, demo.sub.mod"
    out = _run(
        archive,
        package.parent,
        textwrap.dedent("""
        import demo.sub.mod as m
        print(type(m.__spec__.loader).__name__, m.WHERE == m.__file__, m.__doc__, m.f.__doc__)
        try:
            m.g()
        except AssertionError as exc:
            print(exc)
        import demo.engine.skipped as s
        print(type(s.__spec__.loader).__name__)
    """),
    )
    assert out.split("\n")[:4] == ["True", "Archive True None None", "assertions stay",
                                   "SourceFileLoader"], out  # fmt: skip


def test_an_edited_module_is_compiled_from_its_source(package: Path, tmp_path: Path) -> None:
    archive = tmp_path / "demo.codes"
    codearchive.build(str(package), str(archive))
    (package / "sub" / "mod.py").write_text("WHERE = 'edited'\n")
    program = (
        "import demo.sub.mod as m; import demo; print(m.WHERE, "
        "type(m.__spec__.loader).__name__, type(demo.__spec__.loader).__name__)"
    )
    out = _run(archive, package.parent, program)
    assert out.split("\n")[1] == "edited SourceFileLoader Archive"


def test_an_archive_of_another_interpreter_or_none_is_not_used(
    package: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "demo.codes"
    codearchive.build(str(package), str(archive))
    data = bytearray(archive.read_bytes())
    data[0] ^= 0xFF  # another bytecode magic number
    archive.write_bytes(bytes(data))
    out = _run(archive, package.parent, "import demo; print(type(demo.__spec__.loader).__name__)")
    assert out.split() == ["False", "SourceFileLoader"]
    out = _run(tmp_path / "missing.codes", package.parent, "pass")
    assert out.split() == ["False"]
    archive.write_bytes(b"")
    assert codearchive.install(str(archive)) is False
