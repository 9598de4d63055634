"""Network namespaces the engine keeps as files, as ``ip netns add`` keeps them (ip-netns(8)).

A namespace lives while something refers to it (network_namespaces(7)). A bind mount of a
task's ``/proc/<tid>/ns/net`` onto an empty file is such a reference, and the file's path is
what an OCI runtime is given (config-linux.md "Namespaces", ``path``). The namespace is made by
a short-lived thread that calls unshare(CLONE_NEWNET): that changes the namespace of the calling
thread only, so no thread of the engine ever leaves the namespace it runs in, and once the
thread ends the mount is the namespace's only reference.

Every netlink socket the engine uses is made the same way, by a thread that setns(2)'d into the
namespace and then ends: a socket keeps the namespace it was made in. Before the socket is used,
its namespace (SIOCGSKNS) is checked against the file's and against the machine's own, so a
failed or skipped setns can never turn into a bridge or a veth on the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from reference_runtime.engine.errors import EngineError
from reference_runtime.linux import libc, namespaces
from reference_runtime.linux.constants import CLONE_NEWNET, MNT_DETACH, MS_BIND

T = TypeVar("T")

NETLINK_ROUTE = 0  # <linux/netlink.h>


def reason(exc: OSError) -> str:
    """The tail of an error line: strerror(3) ("address already in use"), or the text an
    OSError raised here was given."""
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return text[:1].lower() + text[1:]


def _identity(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _machine_namespaces() -> set[tuple[int, int]]:
    # The machine's own namespace (pid 1's) and the engine process's (its main thread's):
    # neither may ever receive a link, address or route from the engine.
    found = set()
    for path in ("/proc/1/ns/net", "/proc/self/ns/net"):
        with contextlib.suppress(OSError):
            found.add(_identity(path))
    return found


def _in_thread(work: Callable[[], T]) -> T:
    """Runs ``work`` in a thread of its own and returns its result (or raises its error): what
    the thread does to its namespaces ends with it."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=run, name="bulkhead-netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def is_netns(path: Path) -> bool:
    """True if ``path`` holds a network namespace (a bind-mounted nsfs file)."""
    return namespaces.namespace_type(str(path)) == CLONE_NEWNET


def create(path: Path, *, loopback_up: bool = True) -> None:
    """A new network namespace held by a bind mount on ``path`` (which must not exist), with
    its loopback up unless ``loopback_up`` is False."""
    target = str(path)
    try:
        # O_EXCL: a file already there belongs to someone (or to a crashed engine's leftovers,
        # which collect() removes); never mount over it.
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except OSError as exc:
        raise EngineError(f"failed to create network namespace {path}: {reason(exc)}") from None

    def work() -> None:
        libc.unshare(CLONE_NEWNET)
        if loopback_up:
            # A new namespace's lo is down (network_namespaces(7)); the ioctl's socket is made
            # by this thread, so in the new namespace.
            libc.set_link_up("lo")
        libc.mount("/proc/thread-self/ns/net", target, None, MS_BIND, None)

    try:
        _in_thread(work)
        if not is_netns(path) or _identity(target) in _machine_namespaces():
            raise OSError(errno.EIO, "the mount does not hold a new network namespace")
    except OSError as exc:
        remove(path)
        raise EngineError(f"failed to create network namespace {path}: {reason(exc)}") from None


def remove(path: Path) -> bool:
    """Unmounts (MNT_DETACH) and unlinks ``path``; True if anything was there. A namespace
    still used by a process lives on until that process leaves it."""
    target = str(path)
    try:
        libc.umount2(target, MNT_DETACH)
    except OSError as exc:
        # EINVAL: not a mount point (a file left by a crash before its mount); ENOENT: gone.
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise EngineError(f"failed to remove network namespace {path}: {reason(exc)}") from None
    try:
        os.unlink(target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise EngineError(f"failed to remove network namespace {path}: {reason(exc)}") from None
    return True


def _checked(sock: socket.socket, path: Path) -> socket.socket:
    """``sock`` if it belongs to the namespace at ``path`` and that is not the machine's own."""
    got = namespaces.socket_namespace(sock.fileno())
    if got != _identity(str(path)):
        raise OSError(errno.EIO, "the socket was made in another network namespace")
    if got in _machine_namespaces():
        raise OSError(errno.EPERM, "it is the machine's own network namespace")
    return sock


def socket_in(path: Path, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket made inside the network namespace at ``path`` (checked, see the module's
    docstring); the calling thread's namespace does not change."""

    def work() -> socket.socket:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, CLONE_NEWNET, str(path))
        finally:
            os.close(fd)
        sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
        try:
            return _checked(sock, path)
        except BaseException:
            sock.close()
            raise

    try:
        if not is_netns(path):
            raise OSError(errno.ENOENT, "no such network namespace")
        return _in_thread(work)
    except OSError as exc:
        raise EngineError(f"failed to enter network namespace {path}: {reason(exc)}") from None


@contextlib.contextmanager
def rtnl(path: Path) -> Iterator[Any]:
    """A pyroute2 ``IPRoute`` whose netlink socket lives in the namespace at ``path``.

    pyroute2's own ``IPRoute(netns=...)`` forks a helper process per socket (15 ms here) and,
    with its default flags, creates the namespace if the path is missing; a socket made by a
    thread costs 3 ms and cannot create anything. Imported here, not at the top: pyroute2 costs
    ~150 ms of imports, which only the commands that touch the bridge pay.
    """
    sock = socket_in(path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    from pyroute2 import IPRoute

    # pyroute2 takes the descriptor over (its socket closes it); groups=0: no multicast
    # subscription, requests and answers only.
    fd = sock.detach()
    try:
        ipr = IPRoute(fileno=fd, groups=0)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield ipr
    finally:
        ipr.close()


def enter(path: Path) -> None:
    """Moves the calling thread (only) into the namespace at ``path`` for good: the port
    proxy's thread does this so that the sockets it makes to reach containers are made there."""
    try:
        if not is_netns(path):
            raise OSError(errno.ENOENT, "no such network namespace")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, CLONE_NEWNET, str(path))
        finally:
            os.close(fd)
        if _identity("/proc/thread-self/ns/net") != _identity(str(path)):
            raise OSError(errno.EIO, "setns did not move the thread")
    except OSError as exc:
        raise EngineError(f"failed to enter network namespace {path}: {reason(exc)}") from None
