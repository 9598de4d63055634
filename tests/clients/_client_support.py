"""What the client tests share: the runtimes they run over, and cgroup clean-up."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

RUNTIMES = ("reference", "runc")


def runtime_binary(name: str) -> str:
    if name == "reference":
        path = Path(sys.executable).parent / "bulkhead-runtime"
        if not path.exists():
            pytest.skip(f"the reference runtime is not installed beside {sys.executable}")
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def remove_cgroup_tree(name: str) -> None:
    """Removes /sys/fs/cgroup/<hierarchy>/<name> and everything below it, deepest first, in
    every hierarchy (cgroup v1 controllers and the unified one); only empty cgroups go."""
    root = Path("/sys/fs/cgroup")
    tops = [root / name, *(d / name for d in root.iterdir() if d.is_dir())]
    for top in tops:
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            path.rmdir()
        top.rmdir()
