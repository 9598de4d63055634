"""ctypes bindings to the libc calls Python's ``os`` (3.11) lacks; each raises SyscallError."""

from __future__ import annotations

import ctypes
import os

from reference_runtime.errors import SyscallError
from reference_runtime.linux import constants as c

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_syscall = _libc.syscall
_NUMBERS = c.SYSCALLS.get(os.uname().machine, c.SYSCALLS["x86_64"])


def _check(result: int, name: str, path: str = "") -> int:
    if result == -1:
        raise SyscallError(ctypes.get_errno(), name, path)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2). ``target`` is what the error names: it is the path the user configured."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           "mount", target)  # fmt: skip


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    # glibc has no wrapper for pivot_root(2).
    number = _NUMBERS["pivot_root"]
    _check(_syscall(ctypes.c_long(number), _b(new_root), _b(put_old)), "pivot_root", new_root)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare", f"flags {flags:#x}")


def setns(fd: int, nstype: int, path: str = "") -> None:
    _check(_libc.setns(fd, nstype), "setns", path)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname", name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(option, *args), "prctl", f"option {option}")


class _SchedAttr(ctypes.Structure):
    # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes): sched_setattr(2).
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("policy", ctypes.c_uint32),
        ("flags", ctypes.c_uint64),
        ("nice", ctypes.c_int32),
        ("priority", ctypes.c_uint32),
        ("runtime", ctypes.c_uint64),
        ("deadline", ctypes.c_uint64),
        ("period", ctypes.c_uint64),
    ]


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int,
                  deadline: int, period: int) -> None:  # fmt: skip
    """sched_setattr(2) for the calling thread (glibc has no wrapper)."""
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime,
                      deadline, period)  # fmt: skip
    number = _NUMBERS["sched_setattr"]
    _check(_syscall(ctypes.c_long(number), 0, ctypes.byref(attr), 0), "sched_setattr")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    number = _NUMBERS["ioprio_set"]
    _check(_syscall(ctypes.c_long(number), which, who, ioprio), "ioprio_set")


def join_session_keyring(name: str) -> None:
    """keyctl(2) JOIN_SESSION_KEYRING: a keyring of the container's own, so keys the host's
    session holds are not reachable from inside (runc does this unless --no-new-keyring)."""
    number = _NUMBERS["keyctl"]
    serial = _syscall(ctypes.c_long(number), c.KEYCTL_JOIN_SESSION_KEYRING, _b(name))
    if serial == -1:
        err = ctypes.get_errno()
        if err == 38:  # ENOSYS: a kernel without keys; nothing to isolate
            return
        raise SyscallError(err, "keyctl", f"join session keyring {name}")
    _check(_syscall(ctypes.c_long(number), c.KEYCTL_SETPERM, serial, c.KEY_PERMS),
           "keyctl", f"setperm {name}")  # fmt: skip


def set_mempolicy(mode: int, nodes: int, maxnode: int) -> None:
    """set_mempolicy(2) for the calling thread; ``nodes`` is the nodemask as an integer."""
    words = (maxnode + 63) // 64
    mask = (ctypes.c_ulong * words)(*((nodes >> (64 * i)) & (2**64 - 1) for i in range(words)))
    number = _NUMBERS["set_mempolicy"]
    _check(_syscall(ctypes.c_long(number), mode, mask if nodes else None,
                    ctypes.c_ulong(maxnode + 1 if nodes else 0)),
           "set_mempolicy", f"mode {mode:#x} nodes {nodes:#x}")  # fmt: skip


def personality(persona: int) -> None:
    _check(_libc.personality(ctypes.c_ulong(persona)), "personality", f"{persona:#x}")


class _OpenHow(ctypes.Structure):
    # struct open_how (<linux/openat2.h>)
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]  # fmt: skip


class _MountAttr(ctypes.Structure):
    # struct mount_attr (<linux/mount.h>)
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def mount_setattr(path: str, attr_set: int, attr_clr: int) -> None:
    """mount_setattr(2) with AT_RECURSIVE: the whole tree of mounts at ``path``."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    number = _NUMBERS["mount_setattr"]
    result = _syscall(ctypes.c_long(number), c.AT_FDCWD, _b(path), c.AT_RECURSIVE,
                      ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))  # fmt: skip
    _check(result, "mount_setattr", path)


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2) (Linux 5.6); raises SyscallError, ENOSYS where the kernel lacks it."""
    how = _OpenHow(flags, 0, resolve)
    number = _NUMBERS["openat2"]
    result = _syscall(ctypes.c_long(number), dirfd, _b(path), ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how)))  # fmt: skip
    return _check(result, "openat2", path)


class _StatFs(ctypes.Structure):
    # struct statfs (statfs(2)): f_type comes first; the rest is room for the kernel to fill.
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


def fstatfs_type(fd: int, path: str) -> int:
    """fstatfs(2)'s f_type: which filesystem the descriptor is on."""
    buf = _StatFs()
    _check(_libc.fstatfs(fd, ctypes.byref(buf)), "fstatfs", path)
    return int(buf.f_type)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) with version 3 headers: two 32-bit words per set (capabilities 0..63)."""
    header = _CapHeader(c.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread."""
    header = _CapHeader(c.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    eff = data[0].effective | (data[1].effective << 32)
    perm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, perm, inh


class _Ifreq(ctypes.Structure):
    # struct ifreq: a 16-byte name, then a union of which we use ifr_flags (short).
    _fields_ = [("name", ctypes.c_char * 16), ("flags", ctypes.c_short),
                ("pad", ctypes.c_char * 22)]  # fmt: skip


def set_link_up(name: str) -> None:
    """Sets IFF_UP on a network device of the caller's network namespace (netdevice(7))."""
    afinet, dgram = 2, 2  # AF_INET, SOCK_DGRAM: any socket serves for interface ioctls
    fd = _check(_libc.socket(afinet, dgram | 0o2000000, 0), "socket", name)  # SOCK_CLOEXEC
    try:
        req = _Ifreq(name.encode(), 0)
        _check(_libc.ioctl(fd, ctypes.c_ulong(c.SIOCGIFFLAGS), ctypes.byref(req)), "ioctl", name)
        req.flags |= c.IFF_UP
        _check(_libc.ioctl(fd, ctypes.c_ulong(c.SIOCSIFFLAGS), ctypes.byref(req)), "ioctl", name)
    finally:
        os.close(fd)
