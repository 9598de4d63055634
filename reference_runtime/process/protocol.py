"""What the runtime and its children tell each other, over one pipe (child → parent).

::

    runtime (create)            stage-1 child                 init (pid 1 of the container)
    ─────────────────           ─────────────────             ──────────────────────────────
    fork ───────────────────►   user, pid, time namespaces
    make the cgroups            (the user one: "userns",
                                then the runtime's id maps)
                                fork ──────────────────────►  setns, unshare the others
          ◄─── "pid N" ──────── exit 0 (a foreground run:     waits on the placed pipe
                                waits for the init, exits
                                with its status)
    put N in the cgroups;
    "g" on the placed pipe ─────────────────────────────────► a cgroup namespace, setsid,
                                                              hostname, mounts
        (only with prestart/createRuntime hooks:)
          ◄─────────────────────────────────── "mounted" ──── waits on the control pipe
    run prestart, createRuntime
    hooks; "g" on the control pipe ─────────────────────────► createContainer hooks,
                                                              pivot_root, masked/readonly paths,
                                                              sysctl, rlimits, user,
                                                              capabilities, no_new_privs
        (only with an SCMP_ACT_NOTIFY rule: the filter is loaded now, its notify fd goes
         over a socket pair:)
          ◄─────────────────────────────────── "seccomp" ──── sent the fd
    send state + fd to the
    agent at listenerPath
          ◄─────────────────────────────────── "ready" ────── close the pipe
    write state, pid file;                                    open exec.fifo for writing
    exit 0                                                    (blocks until `start`), execve
          ◄──────────── "error <errno> <message>" ─────────── (from either child, then exit 1)

Each message is one line, fields separated by tabs. The parent reads until end of file: every
writer has then closed the pipe (exited, or reached the fifo). A child's error crosses as
(errno, message), as design.md §4.6 asks, and becomes a ContainerInitError in the parent.
"""

from __future__ import annotations

import os

from reference_runtime.errors import ContainerInitError

PID = "pid"
MOUNTED = "mounted"
USERNS = "userns"
READY = "ready"
SECCOMP = "seccomp"  # the notify fd is in the socket pair (linux/seccomp.py)
ERROR = "error"


def send(fd: int, kind: str, *fields: str) -> None:
    line = "\t".join((kind, *(f.replace("\t", " ").replace("\n", " ") for f in fields)))
    os.write(fd, (line + "\n").encode())


def send_error(fd: int, exc: BaseException) -> None:
    errno = getattr(exc, "errno", 0) or 0
    try:  # noqa: SIM105 - contextlib would cost start-up time
        send(fd, ERROR, str(errno), str(exc) or type(exc).__name__)
    except OSError:
        pass  # tolerated: the parent is gone, nobody is left to tell


class Reader:
    """Messages one at a time, as they arrive (the parent acts on "mounted" mid-way)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self) -> list[str] | None:
        """The next message, or None at end of file."""
        while b"\n" not in self.buffer:
            data = os.read(self.fd, 65536)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace").split("\t")


def error_of(msg: list[str]) -> ContainerInitError:
    errno = int(msg[1]) if len(msg) > 1 and msg[1].isdigit() else 0
    return ContainerInitError(msg[2] if len(msg) > 2 else "unknown", errno)


def receive_all(fd: int) -> list[list[str]]:
    """Every message until EOF, as [kind, field...] lists."""
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    text = b"".join(chunks).decode(errors="replace")
    return [line.split("\t") for line in text.splitlines() if line]


class Outcome:
    """What the children reported: the init's pid, whether it got ready, or its error."""

    __slots__ = ("error", "pid", "ready")

    def __init__(self, messages: list[list[str]]) -> None:
        self.pid: int | None = None
        self.ready = False
        self.error: ContainerInitError | None = None
        for msg in messages:
            if msg[0] == PID and len(msg) > 1:
                self.pid = int(msg[1])
            elif msg[0] == READY:
                self.ready = True
            elif msg[0] == ERROR and self.error is None:
                errno = int(msg[1]) if len(msg) > 1 and msg[1].isdigit() else 0
                self.error = ContainerInitError(msg[2] if len(msg) > 2 else "unknown", errno)
