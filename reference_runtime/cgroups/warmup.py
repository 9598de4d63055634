"""Hiding the cost of the first cgroup migration behind the interpreter's start-up.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the kernel's global
``cgroup_threadgroup_rwsem`` for writing. That percpu rwsem switches readers to a slow path
through rcu_sync (kernel/rcu/sync.c), and the first writer waits a whole RCU grace period for
it: 10-15 ms on this host, measured, which is most of runc's entire ``run``. Writers that come
while the switch is in effect (and for one grace period after the last one) pass at once.

So ``create``, ``run`` and ``exec`` start a helper before their heavy imports: it re-writes its
own pid into the cgroup it is already in (a no-op move that still takes the lock) every 2 ms,
until the runtime has placed its container and ends it (SIGKILL, by its pid). The grace
period then elapses while Python imports modules, instead of after. Any failure just disables
the helper.

Opt-in (``BULKHEAD_RUNTIME_WARMUP=1``): measured on the shared build machine (2026-12-01, load
4-9), the first migration alone drops from ~12 ms to 1-3 ms, but ``run`` of /bin/true as a whole
did not get faster (median 70.7 ms with it, 67.5 ms without, 30 runs each) while costing ~6 ms
of CPU for the extra process. Re-measure on a quiet machine before turning it on by default.
"""

from __future__ import annotations

import os

INTERVAL_MS = 2
# Each write inside the window is fast and keeps it open for another grace period; ten
# writes 2 ms apart cover the ~20 ms between start-up and the join without costing much CPU.
MAX_RUNS = 10


def _own_procs_file() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name in ("pids", "memory", "cpu", "freezer", "devices"):
                candidate = f"/sys/fs/cgroup/{name}{path.rstrip('/')}/cgroup.procs"
                if os.path.exists(candidate):
                    return candidate
    for line in lines:
        if line.startswith("0::"):
            for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                candidate = f"{base}{line[3:].rstrip('/')}/cgroup.procs"
                if os.path.exists(candidate):
                    return candidate
    return None


class Warmup:
    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def stop(self) -> None:
        if self.pid <= 0:
            return
        pid, self.pid = self.pid, 0
        # A signal, not a pipe: the container's children inherit every fd of the runtime
        # until they exec, so a pipe would not reach end-of-file in time.
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            return  # tolerated: it ran its course and was reaped by a wait for any child


def start() -> Warmup | None:
    """Starts the helper; None when there is no cgroup to write to (or no permission)."""
    if os.environ.get("BULKHEAD_RUNTIME_WARMUP") != "1":
        return None
    path = _own_procs_file()
    if path is None or not os.access(path, os.W_OK):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the helper
        try:
            import time

            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            me = str(os.getpid()).encode()
            for _ in range(MAX_RUNS):
                os.write(fd, me)
                time.sleep(INTERVAL_MS / 1000)
        finally:
            os._exit(0)
    return Warmup(pid)
