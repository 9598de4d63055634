"""Shared by the engine's image and overlay2 tests (which touch the kernel: we are root): a Layout
under the test's tmp dir whose teardown fails the test if a mount was left below it, and a walk
of a tree to compare before and after a refused operation."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reference_runtime.engine.layout import Layout


def mounts_below(path: Path) -> list[str]:
    prefix = os.path.realpath(path) + "/"
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                out.append(point)
    return out


@contextmanager
def scratch_layout(tmp_path: Path) -> Iterator[Layout]:
    layout = Layout(tmp_path / "root", tmp_path / "run")
    layout.ensure()
    yield layout
    left = mounts_below(tmp_path)
    for point in reversed(left):
        subprocess.run(["umount", "-l", point], check=False)
    assert not left, f"the test left mounts: {left}"


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry below ``root``, symlinks not followed: mode, owner, size, and the link target
    or a digest of the content (so a changed file is seen, not only a new one)."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            else:
                what = ""
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_size, what)
    return out


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of the test's own at ``path``: a disk that is easy to fill."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "bulkhead-test",
                    str(path)], check=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
