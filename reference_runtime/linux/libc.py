"""ctypes bindings to the libc calls Python's ``os`` (3.11) lacks; each raises SyscallError.

The ctypes pieces come from linux/ffi.py, which defines them without importing the ctypes
package, and loads even that only when a function here is first called (ffi.py says what
both cost): importing this module costs no more than its own definitions.
"""

from __future__ import annotations

import os
import sys

from reference_runtime.errors import SyscallError
from reference_runtime.linux import constants as c
from reference_runtime.linux import ffi

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Opened on first call (ffi.py): create's own process calls none of these.
_libc = ffi.Library("libc.so.6")
_NUMBERS = c.SYSCALLS.get(os.uname().machine, c.SYSCALLS["x86_64"])


# The C structs these calls pass, as (field, ctypes type, array length or 0). Each becomes a
# ctypes Structure on first use (_struct): one costs 50-100 KB of resident memory here
# (measured, 2026-12-01: 8.9 MB for this module's seven made at import, 8.5-8.6 MB for none),
# and the runtime's own process, whose peak `run` and `create` are measured by, uses none.
_FIELDS: dict[str, tuple[tuple[str, str, int], ...]] = {
    # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes): sched_setattr(2).
    "sched_attr": (
        ("size", "c_uint32", 0), ("policy", "c_uint32", 0), ("flags", "c_uint64", 0),
        ("nice", "c_int32", 0), ("priority", "c_uint32", 0), ("runtime", "c_uint64", 0),
        ("deadline", "c_uint64", 0), ("period", "c_uint64", 0),
    ),
    # struct open_how (<linux/openat2.h>)
    "open_how": (("flags", "c_uint64", 0), ("mode", "c_uint64", 0), ("resolve", "c_uint64", 0)),
    # struct mount_attr (<linux/mount.h>)
    "mount_attr": (
        ("attr_set", "c_uint64", 0), ("attr_clr", "c_uint64", 0),
        ("propagation", "c_uint64", 0), ("userns_fd", "c_uint64", 0),
    ),
    # struct statfs (statfs(2)): f_type comes first; the rest is room for the kernel to fill.
    "statfs": (("f_type", "c_long", 0), ("rest", "c_byte", 120)),
    # capget(2)/capset(2), _LINUX_CAPABILITY_VERSION_3
    "cap_header": (("version", "c_uint32", 0), ("pid", "c_int", 0)),
    "cap_data": (("effective", "c_uint32", 0), ("permitted", "c_uint32", 0),
                 ("inheritable", "c_uint32", 0)),
    # struct ifreq: a 16-byte name, then a union of which we use ifr_flags (short).
    "ifreq": (("name", "c_char", 16), ("flags", "c_short", 0), ("pad", "c_char", 22)),
}  # fmt: skip
_MADE: dict[str, Any] = {}


def _struct(name: str) -> Any:
    """The ctypes Structure for ``name`` in _FIELDS, made once."""
    made = _MADE.get(name)
    if made is None:
        fields = tuple((field, getattr(ffi, kind) * length if length else getattr(ffi, kind))
                       for field, kind, length in _FIELDS[name])  # fmt: skip
        made = _MADE[name] = type(name, (ffi.Structure,), {"_fields_": fields})
    return made


def _check(result: int, name: str, path: str = "") -> int:
    if result == -1:
        raise SyscallError(ffi.get_errno(), name, path)
    return result


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _b(value: str | None) -> bytes | None:
    # os.fsencode's work for a str, without its checks for bytes and path-likes: a mount
    # passes four of these, and the init makes some forty mounts.
    return None if value is None else value.encode(_FS_ENCODING, _FS_ERRORS)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2). ``target`` is what the error names: it is the path the user configured."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ffi.c_ulong(flags), _b(data)),
           "mount", target)  # fmt: skip


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    # glibc has no wrapper for pivot_root(2).
    number = _NUMBERS["pivot_root"]
    _check(_libc.syscall(ffi.c_long(number), _b(new_root), _b(put_old)), "pivot_root", new_root)


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
    args = [ffi.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(option, *args), "prctl", f"option {option}")


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int,
                  deadline: int, period: int) -> None:  # fmt: skip
    """sched_setattr(2) for the calling thread (glibc has no wrapper)."""
    sched_attr = _struct("sched_attr")
    attr = sched_attr(ffi.sizeof(sched_attr), policy, flags, nice, priority, runtime,
                      deadline, period)  # fmt: skip
    number = _NUMBERS["sched_setattr"]
    _check(_libc.syscall(ffi.c_long(number), 0, ffi.byref(attr), 0), "sched_setattr")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    number = _NUMBERS["ioprio_set"]
    _check(_libc.syscall(ffi.c_long(number), which, who, ioprio), "ioprio_set")


def join_session_keyring(name: str) -> None:
    """keyctl(2) JOIN_SESSION_KEYRING: a keyring of the container's own, so keys the host's
    session holds are not reachable from inside (runc does this unless --no-new-keyring)."""
    number = _NUMBERS["keyctl"]
    serial = _libc.syscall(ffi.c_long(number), c.KEYCTL_JOIN_SESSION_KEYRING, _b(name))
    if serial == -1:
        err = ffi.get_errno()
        if err == 38:  # ENOSYS: a kernel without keys; nothing to isolate
            return
        raise SyscallError(err, "keyctl", f"join session keyring {name}")
    _check(_libc.syscall(ffi.c_long(number), c.KEYCTL_SETPERM, serial, c.KEY_PERMS),
           "keyctl", f"setperm {name}")  # fmt: skip


def set_mempolicy(mode: int, nodes: int, maxnode: int) -> None:
    """set_mempolicy(2) for the calling thread; ``nodes`` is the nodemask as an integer."""
    words = (maxnode + 63) // 64
    mask = (ffi.c_ulong * words)(*((nodes >> (64 * i)) & (2**64 - 1) for i in range(words)))
    number = _NUMBERS["set_mempolicy"]
    _check(_libc.syscall(ffi.c_long(number), mode, mask if nodes else None,
                    ffi.c_ulong(maxnode + 1 if nodes else 0)),
           "set_mempolicy", f"mode {mode:#x} nodes {nodes:#x}")  # fmt: skip


def personality(persona: int) -> None:
    _check(_libc.personality(ffi.c_ulong(persona)), "personality", f"{persona:#x}")


def mount_setattr(path: str, attr_set: int, attr_clr: int) -> None:
    """mount_setattr(2) with AT_RECURSIVE: the whole tree of mounts at ``path``."""
    attr = _struct("mount_attr")(attr_set, attr_clr, 0, 0)
    number = _NUMBERS["mount_setattr"]
    result = _libc.syscall(ffi.c_long(number), c.AT_FDCWD, _b(path), c.AT_RECURSIVE,
                      ffi.byref(attr), ffi.c_size_t(ffi.sizeof(attr)))  # fmt: skip
    _check(result, "mount_setattr", path)


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2) (Linux 5.6); raises SyscallError, ENOSYS where the kernel lacks it."""
    how = _struct("open_how")(flags, 0, resolve)
    number = _NUMBERS["openat2"]
    result = _libc.syscall(ffi.c_long(number), dirfd, _b(path), ffi.byref(how),
                      ffi.c_size_t(ffi.sizeof(how)))  # fmt: skip
    return _check(result, "openat2", path)


def fstatfs_type(fd: int, path: str) -> int:
    """fstatfs(2)'s f_type: which filesystem the descriptor is on."""
    buf = _struct("statfs")()
    _check(_libc.fstatfs(fd, ffi.byref(buf)), "fstatfs", path)
    return int(buf.f_type)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) with version 3 headers: two 32-bit words per set (capabilities 0..63)."""
    header = _struct("cap_header")(c.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_struct("cap_data") * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ffi.byref(header), data), "capset")


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread."""
    header = _struct("cap_header")(c.LINUX_CAPABILITY_VERSION_3, 0)
    data = (_struct("cap_data") * 2)()
    _check(_libc.capget(ffi.byref(header), data), "capget")
    eff = data[0].effective | (data[1].effective << 32)
    perm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, perm, inh


def set_link_up(name: str) -> None:
    """Sets IFF_UP on a network device of the caller's network namespace (netdevice(7))."""
    afinet, dgram = 2, 2  # AF_INET, SOCK_DGRAM: any socket serves for interface ioctls
    fd = _check(_libc.socket(afinet, dgram | 0o2000000, 0), "socket", name)  # SOCK_CLOEXEC
    try:
        req = _struct("ifreq")(name.encode(), 0)
        _check(_libc.ioctl(fd, ffi.c_ulong(c.SIOCGIFFLAGS), ffi.byref(req)), "ioctl", name)
        req.flags |= c.IFF_UP
        _check(_libc.ioctl(fd, ffi.c_ulong(c.SIOCSIFFLAGS), ffi.byref(req)), "ioctl", name)
    finally:
        os.close(fd)
