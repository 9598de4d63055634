"""The few raw syscalls the suite makes on the host side, through ctypes.

Kept here, and only here, so the rest of the machinery stays plain Python. Each failure raises
``OSError`` carrying errno, the call and the path, like the standard library does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
_libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
_libc.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
_libc.semctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]

_libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
_libc.mq_unlink.argtypes = [ctypes.c_char_p]

# <linux/mount.h>
MNT_DETACH = 2
# <bits/ipc.h>
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_RMID = 0


def _fail(call: str, path: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call} failed: {os.strerror(err)}", path)


def mount(source: str, target: str, fstype: str, data: str = "", flags: int = 0) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        raise _fail("mount", target)


def umount(target: str, *, detach: bool = False) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH if detach else 0) != 0:
        raise _fail("umount2", target)


def shm_create(key: int) -> int:
    """Creates a System V shared memory segment with ``key``; returns its id."""
    ident = _libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o600)
    if ident < 0:
        raise _fail("shmget", hex(key))
    return int(ident)


def shm_exists(key: int) -> bool:
    return shm_lookup(key) is not None


def shm_lookup(key: int) -> int | None:
    """The id of the shared memory segment with ``key`` in our IPC namespace, if any."""
    ident = int(_libc.shmget(key, 0, 0))
    return ident if ident >= 0 else None


def shm_remove(ident: int) -> None:
    if _libc.shmctl(ident, IPC_RMID, None) != 0:
        raise _fail("shmctl(IPC_RMID)", str(ident))


def msg_create(key: int) -> int:
    ident = _libc.msgget(key, IPC_CREAT | IPC_EXCL | 0o600)
    if ident < 0:
        raise _fail("msgget", hex(key))
    return int(ident)


def msg_exists(key: int) -> bool:
    return msg_lookup(key) is not None


def msg_lookup(key: int) -> int | None:
    """The id of the message queue with ``key`` in our IPC namespace, if any."""
    ident = int(_libc.msgget(key, 0))
    return ident if ident >= 0 else None


def msg_remove(ident: int) -> None:
    if _libc.msgctl(ident, IPC_RMID, None) != 0:
        raise _fail("msgctl(IPC_RMID)", str(ident))


def sem_remove(ident: int) -> None:
    # semctl(2): IPC_RMID ignores semnum and takes no fourth argument.
    if _libc.semctl(ident, 0, IPC_RMID) != 0:
        raise _fail("semctl(IPC_RMID)", str(ident))


def mq_create(name: str) -> None:
    """Creates the POSIX message queue ``/name`` (exclusively) and closes our descriptor."""
    fd = _libc.mq_open(f"/{name}".encode(), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600, None)
    if fd < 0:
        raise _fail("mq_open", name)
    os.close(fd)


def mq_remove(name: str) -> None:
    if _libc.mq_unlink(f"/{name}".encode()) != 0:
        raise _fail("mq_unlink", name)


def mq_exists(name: str) -> bool:
    """Whether the POSIX message queue ``/name`` exists in our IPC namespace (no mount needed)."""
    fd = _libc.mq_open(f"/{name}".encode(), os.O_RDONLY | os.O_NONBLOCK, 0, None)
    if fd >= 0:
        os.close(fd)
        return True
    if ctypes.get_errno() == errno.ENOENT:
        return False
    raise _fail("mq_open", name)
