"""What the client tests share: the runtimes they run over, and cgroup clean-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.errors import UsageError
from bulkhead.suite import resolve_binary

RUNTIMES = ("reference", "runc")


def runtime_binary(name: str) -> str:
    """The binary the suite's own ``--runtime NAME`` would run; skips if it is not here."""
    try:
        return str(resolve_binary(name))
    except UsageError as exc:
        pytest.skip(str(exc))


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
