"""The reference runtime's guards against the CVE shapes of conformance/test_cve_*.py, tested
on the process itself: descriptors left by a caller, /proc writes that land elsewhere, a cwd
outside the root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference_runtime.errors import SyscallError
from reference_runtime.linux.system import System


def test_inherited_descriptors_are_closed_and_the_runtimes_own_kept(tmp_path: Path) -> None:
    # In a child: closing descriptors of the test process itself would upset pytest.
    code = """
import os, sys
from reference_runtime.linux.proc import close_inherited_fds
leaked = os.open(sys.argv[1], os.O_RDONLY)
os.set_inheritable(leaked, True)
kept = os.open(sys.argv[1], os.O_RDONLY)
os.set_inheritable(kept, True)
ours = os.open(sys.argv[1], os.O_RDONLY | os.O_CLOEXEC)
close_inherited_fds(keep=range(kept, kept + 1))
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
print(is_open(leaked), is_open(kept), is_open(ours))
"""
    (tmp_path / "f").write_text("x")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "True", "True"]


def test_a_proc_write_that_is_not_on_procfs_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "msgmax"
    fake.write_text("canary\n")
    with pytest.raises(SyscallError, match="not on procfs"):
        System().write_procfs(str(fake), "12345")
    assert fake.read_text() == "canary\n"


def test_a_proc_write_does_not_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("canary\n")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(SyscallError):
        System().write_procfs(str(tmp_path / "link"), "1")
    assert target.read_text() == "canary\n"


def test_a_proc_write_on_procfs_goes_through() -> None:
    # Our own oom_score_adj, written with the value it already has: nothing changes.
    path = f"/proc/{os.getpid()}/oom_score_adj"
    System().write_procfs(path, Path(path).read_text().strip())
