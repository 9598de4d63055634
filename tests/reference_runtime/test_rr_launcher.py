"""The lean launcher runs the reference runtime without ``site``: it must still find the
package and behave as the console script does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reference_runtime import launcher


def test_the_launcher_runs_the_runtime_without_site(tmp_path: Path) -> None:
    dest = launcher.install(tmp_path / "bulkhead-runtime")
    first = dest.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"
    assert dest.stat().st_mode & 0o111
    version = subprocess.run([str(dest), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("bulkhead-runtime version ")
    # -S: no site-packages on the path, so nothing but the standard library can leak in.
    probe = dest.read_text().replace(
        "code = main()",
        "print(sys.flags.no_site, sys.flags.isolated, any('site-packages' in p for p in sys.path),"
        " __import__('gc').isenabled(), type(sys.meta_path[0]).__name__); code = 0",
    )
    assert probe != dest.read_text()
    (tmp_path / "probe").write_text(probe)
    (tmp_path / "probe").chmod(0o755)
    seen = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True)
    assert seen.stdout.split() == ["1", "1", "False", "False", "Archive"]


def test_leave_flushes_what_python_buffered_and_exits_as_sys_exit_would() -> None:
    root = str(Path(__file__).resolve().parents[2])
    for code, status in ((3, 3), (0, 0), (256 + 7, 7), (None, 0)):
        program = (f"import sys; sys.path.insert(0, {root!r}); from reference_runtime.cli import "
                   f"leave; print('out', end=''); print('err', end='', file=sys.stderr); "
                   f"leave({code})")  # fmt: skip
        done = subprocess.run([sys.executable, "-IS", "-c", program], capture_output=True)
        assert (done.returncode, done.stdout, done.stderr) == (status, b"out", b"err")


def test_the_launcher_leaves_with_the_verbs_exit_code_and_whole_output(tmp_path: Path) -> None:
    """It exits through os._exit (no interpreter teardown): output must still be complete and
    the code the verb's."""
    dest = launcher.install(tmp_path / "bulkhead-runtime")
    spec = subprocess.run([str(dest), "spec", "--bundle", str(tmp_path)], capture_output=True)
    assert spec.returncode == 0 and (tmp_path / "config.json").is_file()
    piped = subprocess.run([str(dest), "features"], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout.rstrip().endswith("}"), piped.stdout[-200:]
    unknown = subprocess.run([str(dest), "no-such-verb"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "no such command" in unknown.stderr


def test_install_replaces_the_file_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "bulkhead-runtime"
    dest.write_text("old")
    launcher.install(dest, python="/usr/bin/python3")
    assert dest.read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bulkhead-runtime"]


def test_usage_errors() -> None:
    assert launcher.main(["--help"]) == 2
    assert launcher.main(["a", "b"]) == 2
