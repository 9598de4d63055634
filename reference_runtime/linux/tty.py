"""Terminals: a pty pair from the container's devpts, its master handed out over a socket.

With ``process.terminal`` the program's stdio is the slave side of a pseudo-terminal made in
the container's own devpts instance (``/dev/pts/ptmx``, pts(4)), and the master goes to whoever
listens on ``--console-socket`` (containerd's shim, podman's conmon) as an SCM_RIGHTS message
(unix(7)), as runc does. ``socket`` is imported only here: terminals are the rare case.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError, SyscallError

# <asm-generic/ioctls.h>
TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441  # Linux 4.13: open the slave from the master, no path lookup
TIOCSWINSZ = 0x5414


def connect_console(path: str) -> int:
    """A connected fd for ``--console-socket``; refuses what is not a listening socket.

    Also loads ``fcntl`` and ``socket`` for the children: ``exec`` uses them after setns into
    the container's mount namespace, where the runtime's own files can no longer be imported.
    """
    import fcntl  # noqa: F401 - see above
    import socket
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SpecError(f"--console-socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise SpecError(f"--console-socket {path} is not a socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise SpecError(f"--console-socket {path}: {exc.strerror}") from None
    return sock.detach()


def console_pair() -> tuple[int, int]:
    """(our end, the container's end) of a socket pair standing in for --console-socket."""
    import fcntl  # noqa: F401 - loaded for the children, as in connect_console
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours.detach(), theirs.detach()


def receive_master(sock_fd: int) -> int:
    import socket

    sock = socket.socket(fileno=sock_fd)
    try:
        _, fds, _, _ = socket.recv_fds(sock, 64, 1)
    finally:
        sock.close()
    if not fds:
        raise SyscallError(71, "recvmsg", "console")  # EPROTO: no descriptor came
    return fds[0]


def relay(master: int) -> None:
    """Copies our stdin to the pty and the pty to our stdout until the pty hangs up.

    Our terminal, if stdin is one, is put in raw mode meanwhile (the container's pty does the
    line discipline) and restored afterwards.
    """
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    try:
        poller = select.poll()
        poller.register(master, select.POLLIN)
        stdin_open = True
        poller.register(0, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""  # EIO from the master: every slave is closed
                if fd == master:
                    if not data:
                        return
                    os.write(1, data)
                elif data:
                    os.write(master, data)
                elif stdin_open:
                    poller.unregister(0)
                    stdin_open = False
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def open_pty(ptmx: str) -> tuple[int, int, int]:
    """(master, slave, pty number) from the devpts instance whose ptmx is ``ptmx``."""
    import fcntl

    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")  # unlockpt(3)
        number = int.from_bytes(fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"), "little")
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "open pty", ptmx) from None
    return master, slave, number


def set_size(master: int, size: tuple[int, int] | None) -> None:
    """Sizes the pty (config.md process.consoleSize: height rows, width columns); None leaves
    the kernel's 0x0. Set on the master before the program runs, so it sees the size at once."""
    if size is None:
        return
    import fcntl

    rows, cols = size
    winsize = rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + b"\0\0\0\0"
    try:
        fcntl.ioctl(master, TIOCSWINSZ, winsize)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "ioctl TIOCSWINSZ", "console") from None


def send_master(console_fd: int, master: int) -> None:
    import socket

    sock = socket.socket(fileno=console_fd)
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "sendmsg", "--console-socket") from None
    finally:
        sock.close()
    os.close(master)


def become_terminal_of(slave: int) -> None:
    """Makes ``slave`` stdin, stdout, stderr and the controlling terminal (the caller has
    called setsid: only a session leader may take one, TIOCSCTTY in tty_ioctl(4))."""
    import fcntl

    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    try:
        fcntl.ioctl(0, TIOCSCTTY, 0)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "ioctl TIOCSCTTY", "/dev/console") from None
