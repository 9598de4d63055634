"""The process attributes of config.md "Process", applied to the calling process before execve.

Shared by the container's init and by ``exec``. The order is the one capabilities(7) and
credentials(7) impose: rlimits and oom score while still privileged; the bounding set reduced
while CAP_SETPCAP is effective; PR_SET_KEEPCAPS across the uid change so the permitted set
survives it; then capset, ambient, no_new_privs, umask and the working directory.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError, SyscallError
from reference_runtime.linux import capabilities as caps
from reference_runtime.linux import constants as c
from reference_runtime.linux import libc
from reference_runtime.linux.rlimits import setrlimit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.spec.model import Process


def find_executable(name: str, env: list[str]) -> str:
    """``name`` looked up like execvp(3), with the PATH of the container's environment."""
    if "/" in name:
        if not os.path.isfile(name):
            raise SpecError(f"executable {name} not found in the container")
        return name
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SpecError(f"executable {name!r} not found in $PATH inside the container")


def environ(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def apply_privileged(proc: Process) -> None:
    """The parts that need the runtime's privileges: rlimits and the OOM score."""
    for r in proc.rlimits:
        setrlimit(r.type, r.soft, r.hard)
    if proc.personality is not None:
        libc.personality(proc.personality)  # execve(2) keeps it
    if proc.memory_policy is not None:
        # set_mempolicy(2): inherited by children and kept across execve(2).
        libc.set_mempolicy(*proc.memory_policy, c.MPOL_MAX_NODES)
    if proc.scheduler is not None:
        libc.sched_setattr(*proc.scheduler)
    if proc.io_priority is not None:
        libc.ioprio_set(c.IOPRIO_WHO_PROCESS, 0, proc.io_priority)
    if proc.oom_score_adj is not None:
        try:
            fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(proc.oom_score_adj).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "write", "/proc/self/oom_score_adj") from None


def apply_identity(proc: Process) -> None:
    """User, groups, the five capability sets, no_new_privs, umask, cwd."""
    last = caps.last_cap()
    sets = {name: caps.mask(proc.capabilities.get(name, [])) for name in caps.SETS}
    caps.drop_bounding(sets["bounding"], last)
    libc.prctl(c.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(proc.additional_gids)
        os.setresgid(proc.gid, proc.gid, proc.gid)
        os.setresuid(proc.uid, proc.uid, proc.uid)
    except OSError as exc:
        what = f"uid {proc.uid} gid {proc.gid}"
        raise SyscallError(exc.errno or 0, "setresuid", what) from None
    libc.prctl(c.PR_SET_KEEPCAPS, 0)
    caps.set_capabilities(sets, last)
    if proc.no_new_privileges:
        libc.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
    # config.md leaves an absent umask to the runtime; 0022 is what runc and crun use.
    os.umask(0o022 if proc.umask is None else proc.umask)
    try:
        os.chdir(proc.cwd)
        # CVE-2024-21626: a cwd such as /proc/self/fd/N may lead to a directory outside the
        # container's root; getcwd(3) then fails (ENOENT) or names an "(unreachable)" path.
        reached = os.getcwd()
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "chdir", proc.cwd) from None
    if not reached.startswith("/"):
        raise SyscallError(2, "chdir", f"{proc.cwd} (outside the container: {reached})")
