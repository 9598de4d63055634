"""Namespaces: their type from a path, joining (setns) and creating (unshare)."""

from __future__ import annotations

import os

from reference_runtime.linux import libc
from reference_runtime.linux.constants import NAMESPACES

# <linux/nsfs.h>: _IO(0xb7, 0x3) — the CLONE_NEW* type of a namespace file (Linux 4.11).
NS_GET_NSTYPE = 0xB703


def namespace_type(path: str) -> int | None:
    """The CLONE_NEW* flag of the namespace at ``path``, or None if it is not one."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None  # ENOTTY: an ordinary file, not an nsfs one
    finally:
        os.close(fd)


def open_namespace(path: str) -> int:
    from reference_runtime.errors import SyscallError

    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "open", path) from None


def join(fd: int, kind: str, path: str) -> None:
    libc.setns(fd, NAMESPACES[kind][0], path)


def unshare(kinds: list[str]) -> None:
    flags = 0
    for kind in kinds:
        flags |= NAMESPACES[kind][0]
    if flags:
        libc.unshare(flags)


# <linux/sockios.h>: SIOCGSKNS (Linux 4.9) — an fd of the network namespace a socket belongs to.
SIOCGSKNS = 0x894C


def socket_namespace(sock_fd: int) -> tuple[int, int]:
    """(st_dev, st_ino) of the network namespace socket ``sock_fd`` was made in: a socket keeps
    that namespace for its whole life (network_namespaces(7)), whichever thread uses it."""
    import fcntl

    from reference_runtime.errors import SyscallError

    try:
        ns_fd = fcntl.ioctl(sock_fd, SIOCGSKNS)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "ioctl", "SIOCGSKNS") from None
    try:
        info = os.fstat(ns_fd)
    finally:
        os.close(ns_fd)
    return info.st_dev, info.st_ino
