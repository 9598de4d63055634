"""Facts about processes from /proc (proc(5))."""

from __future__ import annotations

import os
import time

from reference_runtime.errors import SyscallError


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None if the process is gone.

    The command name (field 2) may hold spaces and parentheses, so split after the last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def start_time(pid: int) -> int | None:
    """Field 22, starttime (clock ticks after boot): with the pid it names one process."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_alive(pid: int, started: int | None) -> bool:
    """The same process (pid + start time) still exists and is not a zombie (state Z/X)."""
    fields = stat_fields(pid)
    if not fields or len(fields) < 20:
        return False
    if started is not None and int(fields[19]) != started:
        return False  # the pid was reused by another process
    return fields[0] not in ("Z", "X", "x")


def wait_gone(pid: int, started: int | None, timeout: float = 10.0) -> None:
    """Waits until the process has died (a zombie counts as dead); reaps it if it is ours."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while is_alive(pid, started):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass  # not our child: its parent (or the host's init) reaps it
        if time.monotonic() > deadline:
            raise SyscallError(110, "wait", f"pid {pid}")  # ETIMEDOUT
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def close_inherited_fds(keep: range = range(0)) -> None:
    """Closes every descriptor above stderr that the runtime's caller left open, but ``keep``
    (--preserve-fds).

    Whatever the caller left open must not reach the container (CVE-2024-21626 was a leaked
    host directory fd): not at execve, and not before it either, while a process in the
    container could reach it as /proc/<init>/fd/N or name it in process.cwd. The caller's are
    the inheritable ones: the runtime's own fds are all O_CLOEXEC (PEP 446).
    """
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            if os.get_inheritable(fd):
                os.close(fd)
        except OSError:
            continue  # tolerated: the fd listing /proc/self/fd itself, now closed
