"""Hiding the cost of the first cgroup migration behind the interpreter's imports.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the kernel's global
``cgroup_threadgroup_rwsem`` for writing. That percpu rwsem switches readers to a slow path
through rcu_sync (kernel/rcu/sync.c), and the first writer waits a whole RCU grace period for
it: 8-16 ms on this host, measured (a write after 200 ms of quiet), longer under load, which
is as long as all of runc's ``run``. Writers that come while the switch is in effect, and for
about one grace period after the last one, pass at once (0.01-0.06 ms measured for writes up
to 20 ms apart; 30 ms apart, the next one waits again).

So ``create``, ``run`` and ``exec`` start a helper first thing, before their imports: a forked
child that writes ``0`` (the writing process itself, cgroup-v1 and cgroup-v2 docs) into the
cgroup it was born in, a move to where it already is that still takes the lock, and exits.
The grace period then elapses while the runtime imports modules and reads the config, instead
of in stage 1's join. Just before its first fork for the container, the runtime writes once
itself (``stop``: at once if the window is open, else it waits for what is left of the grace
period) and reaps the helper; stage 1's writes a millisecond later find the window open.

Measured on this host (2026-12-01, `run` of /bin/true, 40 runs each, interleaved, load 3-4):
90-102 ms without the warm-up, 78-90 ms with a helper started through posix_spawn(3) of a
shell (which blocks the runtime until the shell has exec'd), 75-85 ms with the forked helper.
A helper thread did as well as the shell but added ~250 KB to the runtime's peak memory; the
fork, made before the imports, is of a small interpreter, and its memory never exceeds the
runtime's. Any failure just leaves the join to pay the wait.

``BULKHEAD_RUNTIME_WARMUP=0`` turns it off (to measure without it).
"""

from __future__ import annotations

import os


def _own_procs_file() -> str | None:
    """The runtime's own cgroup.procs in one hierarchy (the lock is global: any serves)."""
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
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
    """The helper writing into the runtime's own cgroup; ``stop`` before the first fork."""

    __slots__ = ("path", "pid")

    def __init__(self, path: str, pid: int) -> None:
        self.path = path
        self.pid = pid

    def stop(self) -> None:
        """One more write, from the runtime itself: instant while the window is open (else it
        waits out the grace period the helper is still waiting for), and it keeps the window
        open for the join that follows. Then the helper, done by now, is reaped."""
        if self.pid <= 0:
            return
        pid, self.pid = self.pid, 0
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass  # tolerated: the warm-up is an optimisation, the join reports real failures
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # tolerated: reaped by a wait for any child (a foreground run's)


def start() -> Warmup | None:
    """Starts the helper; None when there is no cgroup to write to (or no permission)."""
    if os.environ.get("BULKHEAD_RUNTIME_WARMUP") == "0":
        return None
    path = _own_procs_file()
    if path is None or not os.access(path, os.W_OK):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the helper: one write, then gone (no Python teardown, no exit handlers)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")
        finally:
            os._exit(0)
    return Warmup(path, pid)
