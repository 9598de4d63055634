"""The console socket of runc's command line (``--console-socket``), as a test holds it.

With ``process.terminal`` the runtime makes a pseudo-terminal for the process and sends its
master side over an AF_UNIX socket that the caller listens on, as one SCM_RIGHTS message
(unix(7)); containerd's shim and conmon receive it this way. The test listens, takes the
master, and talks to the process through it: what it writes arrives as the process's input,
what the process prints is read back, and the pty's number comes from the master itself
(TIOCGPTN, pts(4)).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

TIOCGPTN = 0x80045430  # <asm-generic/ioctls.h>: the number of a pty master's slave
# pts(4) slaves: UNIX98_PTY_SLAVE_MAJOR 136, over UNIX98_PTY_MAJOR_COUNT (8) majors.
PTY_SLAVE_MAJORS = range(136, 144)


class ConsoleSocket:
    """A listening socket at ``path``; ``master()`` takes the pty master a runtime sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        # The runtime connects and sends during create: the connection waits in the backlog
        # until the test accepts it, after create has returned.
        self._sock.listen(4)
        self._fds: list[int] = []

    def master(self, timeout: float = 10.0) -> int:
        """The fd of the next pty master sent over the socket; fails if none comes."""
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
        except TimeoutError:
            raise AssertionError(
                f"no runtime connected to the console socket {self.path}"
            ) from None
        with conn:
            conn.settimeout(timeout)
            fds = array.array("i")
            _, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(data) - len(data) % fds.itemsize
                    fds.frombytes(data[:usable])
        self._fds += list(fds)
        assert len(fds) == 1, f"the console socket received {len(fds)} descriptors, not one"
        return fds[0]

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.contextmanager
def console_socket(directory: Path, name: str) -> Iterator[ConsoleSocket]:
    """A console socket in ``directory`` (the session's), removed afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = ConsoleSocket(directory / f"{name}.console")
    try:
        yield sock
    finally:
        sock.close()


def pty_number(master: int) -> int:
    """The number N of the slave /dev/pts/N that belongs to ``master``."""
    buf = fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0")
    return int.from_bytes(buf, "little")


def is_pty_master(fd: int) -> bool:
    """A character device that answers TIOCGPTN: the master side of a pts(4) pair."""
    if not stat.S_ISCHR(os.fstat(fd).st_mode):
        return False
    try:
        pty_number(fd)
    except OSError:
        return False
    return True


def read_until(master: int, marker: str, timeout: float = 10.0) -> str:
    """What the process printed on its terminal, up to and including the line holding
    ``marker`` (the pty ends lines with CR LF: returned as LF). Fails on timeout or hang-up."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen or not seen.rstrip(b"\r").endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} on the terminal within {timeout:g} s: {seen!r}")
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every slave side is closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"the terminal hung up before {marker!r}: {seen!r}")
        seen += chunk
    return seen.decode(errors="replace").replace("\r\n", "\n")


def fields(text: str) -> dict[str, str]:
    """``key=value`` words of the terminal's lines (the last value of a key wins)."""
    found = {}
    for line in text.splitlines():
        for word in line.split():
            key, eq, value = word.partition("=")
            if eq:
                found[key] = value
    return found
