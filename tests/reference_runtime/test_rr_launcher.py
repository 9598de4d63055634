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
        "from reference_runtime.cli import main\nsys.exit(main())",
        "print(sys.flags.no_site, sys.flags.isolated, any('site-packages' in p for p in sys.path))",
    )
    (tmp_path / "probe").write_text(probe)
    (tmp_path / "probe").chmod(0o755)
    seen = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True)
    assert seen.stdout.split() == ["1", "1", "False"]


def test_install_replaces_the_file_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "bulkhead-runtime"
    dest.write_text("old")
    launcher.install(dest, python="/usr/bin/python3")
    assert dest.read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bulkhead-runtime"]


def test_usage_errors() -> None:
    assert launcher.main(["--help"]) == 2
    assert launcher.main(["a", "b"]) == 2
