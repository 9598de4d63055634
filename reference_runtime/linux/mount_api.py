"""The new mount API for idmapped mounts: open_tree(2), mount_setattr(2), move_mount(2), and a
user namespace that holds nothing but a mapping.

An idmapped mount (mount_setattr(2) MOUNT_ATTR_IDMAP, Linux 5.12) shows every file's owner
through the mapping of a user namespace: an id stored on disk is taken as an id inside that
namespace, and the file shows as what it maps to outside. The kernel takes the mapping only on a
detached mount (a clone made by open_tree(OPEN_TREE_CLONE) that is not yet in any tree), from a
caller privileged over the filesystem's user namespace (the host's, for a host directory): so
the runtime makes the mount on the host, and the container's init moves it into place.

glibc 2.36 has no wrappers for these calls; they go through syscall(2).
"""

from __future__ import annotations

import ctypes
import os

from reference_runtime.errors import SyscallError
from reference_runtime.linux.constants import AT_FDCWD, AT_RECURSIVE, CLONE_NEWUSER
from reference_runtime.linux.files import write_file
from reference_runtime.linux.libc import unshare

# <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64): every system call added since
# Linux 5.1 (number 424 on) has one number on all architectures but alpha, mips and ia64.
NR_OPEN_TREE = 428
NR_MOVE_MOUNT = 429
NR_MOUNT_SETATTR = 442

# <linux/mount.h>: open_tree(2) flags
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC  # the same bit, by definition in <linux/mount.h>
# <linux/mount.h>: move_mount(2) flags
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004  # the source is the descriptor itself
MOVE_MOUNT_T_EMPTY_PATH = 0x00000040  # the target is the descriptor itself
# <linux/mount.h>: mount_setattr(2) attribute (Linux 5.12)
MOUNT_ATTR_IDMAP = 0x00100000
# <fcntl.h>: act on the descriptor itself, not on a path below it
AT_EMPTY_PATH = 0x1000

# /proc/<pid>/uid_map takes at most this many lines (kernel/user_namespace.c
# UID_GID_MAP_MAX_EXTENTS, Linux 4.15; user_namespaces(7)).
MAX_EXTENTS = 340

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_syscall = _libc.syscall


class MountAttr(ctypes.Structure):
    # struct mount_attr (<linux/mount.h>), MOUNT_ATTR_SIZE_VER0: four __u64, 32 bytes.
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def _check(result: int, name: str, what: str) -> int:
    if result == -1:
        raise SyscallError(ctypes.get_errno(), name, what)
    return result


def open_tree(path: str, *, recursive: bool) -> int:
    """A detached copy of the mount at ``path`` (with the mounts below it when ``recursive``,
    as an rbind takes them), as a close-on-exec descriptor."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    result = _syscall(ctypes.c_long(NR_OPEN_TREE), AT_FDCWD, os.fsencode(path),
                      ctypes.c_uint(flags))  # fmt: skip
    return _check(result, "open_tree", path)


def set_idmap(tree: int, userns: int, *, recursive: bool, what: str) -> None:
    """mount_setattr(2) MOUNT_ATTR_IDMAP on the detached mount ``tree`` (AT_RECURSIVE: on every
    mount of it), with the mapping of the user namespace open at ``userns``."""
    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    result = _syscall(ctypes.c_long(NR_MOUNT_SETATTR), tree, b"", ctypes.c_uint(flags),
                      ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))  # fmt: skip
    _check(result, "mount_setattr", what)


def move_mount(tree: int, target: str, target_fd: int = -1) -> None:
    """Attaches the detached mount ``tree`` at ``target`` (in the caller's mount namespace), or
    at the directory or file ``target_fd`` is open on: move_mount(2) follows no symlink in the
    target without MOVE_MOUNT_T_SYMLINKS, so a /proc/self/fd/N path would name the link."""
    flags = MOVE_MOUNT_F_EMPTY_PATH
    if target_fd >= 0:
        to_dir, to_path = target_fd, b""
        flags |= MOVE_MOUNT_T_EMPTY_PATH
    else:
        to_dir, to_path = AT_FDCWD, os.fsencode(target)
    result = _syscall(ctypes.c_long(NR_MOVE_MOUNT), tree, b"", to_dir, to_path,
                      ctypes.c_uint(flags))  # fmt: skip
    _check(result, "move_mount", target)


def map_lines(maps: list[tuple[int, int, int]]) -> str:
    """uid_map/gid_map text: one "inside outside count" line per (containerID, hostID, size)."""
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in maps)


def mapping_userns(uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]) -> int:
    """A descriptor of a new user namespace with these maps, and no process left in it.

    A forked child unshares CLONE_NEWUSER and waits; we (privileged in the parent namespace,
    user_namespaces(7)) write its maps and open /proc/<child>/ns/user; then the child exits.
    The descriptor keeps the namespace alive as long as a mount or we hold it.
    """
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)
        raise SyscallError(exc.errno or 0, "fork", "idmap user namespace") from None
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(ready_r)
            os.close(done_w)
            try:
                unshare(CLONE_NEWUSER)
                os.write(ready_w, b"ok")
            except OSError as exc:
                os.write(ready_w, str(exc.errno or 0).encode())
                code = 1
            os.read(done_r, 1)  # end of file: the parent is done with us
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        answer = os.read(ready_r, 16)
        if answer != b"ok":
            errno = int(answer) if answer.isdigit() else 0
            raise SyscallError(errno, "unshare", "CLONE_NEWUSER for an idmapped mount")
        # One write each, by a process with CAP_SETUID/CAP_SETGID over the parent namespace:
        # "setgroups" need not be denied then (user_namespaces(7)).
        write_file(f"/proc/{pid}/uid_map", map_lines(uids))
        write_file(f"/proc/{pid}/gid_map", map_lines(gids))
        path = f"/proc/{pid}/ns/user"
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "open", path) from None
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def open_userns(path: str) -> int:
    """A joined user namespace's file, whose mapping an idmapped mount may take."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "open", path) from None
