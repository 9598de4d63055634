"""Hiding the cost of the first cgroup migration behind the interpreter's imports.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the kernel's global
``cgroup_threadgroup_rwsem`` for writing. That percpu rwsem switches readers to a slow path
through rcu_sync (kernel/rcu/sync.c), and the first writer waits a whole RCU grace period for
it: 6-16 ms on this host, measured (a write after 200 ms of quiet), longer under load, which
is as long as all of runc's ``run``. Writers that come while the switch is in effect, and for
about one grace period after the last one, pass at once (0.01-0.06 ms measured for writes up
to 20 ms apart; 30 ms apart, the next one waits again). The writer waits holding
``cgroup_mutex``, so a ``mkdir`` in any cgroup hierarchy waits for it too.

So ``create``, ``run`` and ``exec`` start a helper first thing: a shell, spawned, that writes
``0`` (the writing process itself, cgroup-v1 and cgroup-v2 docs) into the cgroup the runtime
is in, a move to where it already is that still takes the lock. The grace period then elapses
while the runtime imports modules and reads the config, instead of in the cgroup join. The
launcher starts it before it imports the command line (``early``: the verb is read from argv
by hand, with the global options' names kept in step with cli/main.py by a unit test); run
any other way, the verb starts it (``start``). Just before a process joins the container's
cgroups (the init, or exec's stage 1), the runtime writes once itself (``stop``: at once if the
window is open, else it waits for what is left of the grace period) and reaps the helper; the
join right after finds the window open.

Measured on this host (2026-12-01, 20 interleaved rounds of ``run`` of /bin/true and the
create/start/kill/delete cycle, each way started by the launcher): a forked helper 47.1 and
99.8 ms, a helper thread 49.7 and 97.9 ms, the spawned shell 45.6 and 96.2 ms (runc: 38.9
and 55.8 ms). A fork costs its page tables and then a copy-on-write fault for every page the
runtime writes while the helper lives; a thread added ~170 KB to the runtime's peak RSS (the
threading code of libc and the interpreter, paged in), which is a target of its own;
posix_spawn(3) shares the memory until the shell's exec and blocks only until then. Without
/bin/sh, or on any failure, the join just pays the wait.

``BULKHEAD_RUNTIME_WARMUP=0`` turns it off (to measure without it).
"""

from __future__ import annotations

import os

# The verbs whose first fork joins a cgroup, and cli/main.py's global options that take a
# value (``--root DIR``): what ``early`` needs to find the verb in argv without the parser.
VERBS = ("create", "run", "exec")
GLOBAL_VALUE_OPTIONS = ("criu", "log", "log-format", "root", "rootless")

_early: Warmup | None = None


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


def _write_self(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass  # tolerated: the warm-up is an optimisation, the join reports real failures


# The helper: one redirection by the shell, of a line cgroup.procs reads as "0". Its stderr
# goes first (a cgroup it may not write must not put a shell error before the user), by the
# shell itself: file actions for posix_spawn cost ~50 KB of the runtime's peak RSS, measured.
SHELL = "/bin/sh"
SCRIPT = 'exec 2>/dev/null; echo 0 >"$1"'


class Warmup:
    """The helper's write into the runtime's own cgroup; ``stop`` before the first fork."""

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
        _write_self(self.path)
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # tolerated: reaped by a wait for any child (a foreground run's)


def _begin() -> Warmup | None:
    if os.environ.get("BULKHEAD_RUNTIME_WARMUP") == "0":
        return None
    path = _own_procs_file()
    if path is None or not os.access(path, os.W_OK):
        return None
    try:
        pid = os.posix_spawn(SHELL, ["sh", "-c", SCRIPT, "sh", path], {})
    except OSError:
        return None
    return Warmup(path, pid)


def verb_of(argv: list[str]) -> str | None:
    """The verb in a runtime command line (``argv[1:]``): the first word after the global
    options, as cli/main.py's parser finds it."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            return next(args, None)
        if not arg.startswith("-") or arg == "-":
            return arg
        name = arg.lstrip("-")
        if "=" not in name and name in GLOBAL_VALUE_OPTIONS:
            next(args, None)  # its value
    return None


def early(argv: list[str]) -> None:
    """Called by the launcher before any other import: starts the helper for the verbs that
    need it."""
    global _early
    if _early is None and verb_of(argv) in VERBS:
        _early = _begin()


def finish() -> None:
    """Reaps a helper the launcher started that no verb took (the command line was refused
    before the verb ran): nothing of the runtime outlives it."""
    global _early
    helper, _early = _early, None
    if helper is not None:
        helper.stop()


def start() -> Warmup | None:
    """The helper the launcher started, or one started now; None when there is no cgroup to
    write to (or no permission, or it is turned off)."""
    global _early
    helper, _early = _early, None
    return helper if helper is not None else _begin()
