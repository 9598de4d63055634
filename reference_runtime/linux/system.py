"""The kernel boundary that plans execute against: one object, injectable, recordable.

Rootfs and init steps call ``system.<operation>(...)`` rather than libc or ``os`` directly, so
unit tests can hand them a recording fake (tests/reference_runtime/fakes.py) and check the
exact sequence of mounts without root or a kernel.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SyscallError
from reference_runtime.linux import libc
from reference_runtime.linux.files import write_file


def _os_error(exc: OSError, name: str, path: str) -> SyscallError:
    return SyscallError(exc.errno or 0, name, path)


class System:
    """Real system calls. Every method raises SyscallError on failure."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        libc.mount(source, target, fstype, flags, data)

    def umount(self, target: str, flags: int) -> None:
        libc.umount2(target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        libc.pivot_root(new_root, put_old)

    def chdir(self, path: str) -> None:
        try:
            os.chdir(path)
        except OSError as exc:
            raise _os_error(exc, "chdir", path) from None

    def open_dir(self, path: str) -> int:
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, "open", path) from None

    def fchdir(self, fd: int) -> None:
        try:
            os.fchdir(fd)
        except OSError as exc:
            raise _os_error(exc, "fchdir", f"fd {fd}") from None

    def close(self, fd: int) -> None:
        os.close(fd)

    def chroot(self, path: str) -> None:
        try:
            os.chroot(path)
        except OSError as exc:
            raise _os_error(exc, "chroot", path) from None

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass  # tolerated: the mount point (or device directory) is already there
        except OSError as exc:
            raise _os_error(exc, "mkdir", path) from None

    def touch(self, path: str, mode: int = 0o644) -> None:
        """Creates an empty regular file as a mount point for a file bind mount."""
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, mode))
        except OSError as exc:
            raise _os_error(exc, "open", path) from None

    def mknod(self, path: str, mode: int, major: int, minor: int) -> None:
        try:
            os.mknod(path, mode, os.makedev(major, minor))
        except OSError as exc:
            raise _os_error(exc, "mknod", path) from None

    def chown(self, path: str, uid: int, gid: int) -> None:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as exc:
            raise _os_error(exc, "chown", path) from None

    def chmod(self, path: str, mode: int) -> None:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            raise _os_error(exc, "chmod", path) from None

    def symlink(self, target: str, link: str) -> None:
        try:
            os.symlink(target, link)
        except FileExistsError:
            pass  # tolerated: the image ships the link already
        except OSError as exc:
            raise _os_error(exc, "symlink", link) from None

    def write(self, path: str, text: str) -> None:
        write_file(path, text)

    def write_procfs(self, path: str, text: str) -> None:
        """Writes a /proc file, refusing one that is not on procfs: a config mount over /proc
        (a tmpfs, a bind of a fake tree) must not take the write (CVE-2019-16884), and a
        symlink is not followed (O_NOFOLLOW)."""
        from reference_runtime.linux import constants as c

        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, "open", path) from None
        try:
            if libc.fstatfs_type(fd, path) != c.PROC_SUPER_MAGIC:
                raise SyscallError(18, "write", f"{path} (not on procfs)")  # EXDEV
            try:
                os.write(fd, text.encode())
            except OSError as exc:
                raise _os_error(exc, "write", f"{path} ({text.strip()})") from None
        finally:
            os.close(fd)

    def statvfs_flags(self, path: str) -> int:
        """The ST_* flags of the mount at ``path`` (the same bits as MS_RDONLY.. MS_NOEXEC)."""
        try:
            return os.statvfs(path).f_flag
        except OSError as exc:
            raise _os_error(exc, "statvfs", path) from None

    def lstat_kind(self, path: str) -> str | None:
        """ "dir", "file" (anything else), or None when absent."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(exc, "lstat", path) from None
        return "dir" if (st.st_mode & 0o170000) == 0o040000 else "file"

    def node(self, path: str) -> tuple[int, int, int] | None:
        """(file type bits of st_mode, major, minor) of what lstat(2) finds, None when absent."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(exc, "lstat", path) from None
        return st.st_mode & 0o170000, os.major(st.st_rdev), os.minor(st.st_rdev)

    def stat_kind(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(exc, "stat", path) from None
        return "dir" if (st.st_mode & 0o170000) == 0o040000 else "file"

    def readlink(self, path: str) -> str | None:
        """The target when ``path`` is a symlink, None when it is anything else or absent."""
        try:
            return os.readlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == 22:  # EINVAL: not a symlink
                return None
            raise _os_error(exc, "readlink", path) from None

    def mount_setattr(self, path: str, attr_set: int, attr_clr: int) -> None:
        libc.mount_setattr(path, attr_set, attr_clr)

    # Idmapped mounts (linux/mount_api.py, loaded only for a config that has one): made
    # detached on the host by the runtime, moved into place by the container's init.
    def mapping_userns(
        self, uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]
    ) -> int:
        from reference_runtime.linux import mount_api

        return mount_api.mapping_userns(uids, gids)

    def open_userns(self, path: str) -> int:
        from reference_runtime.linux import mount_api

        return mount_api.open_userns(path)

    def open_tree(self, path: str, *, recursive: bool) -> int:
        from reference_runtime.linux import mount_api

        return mount_api.open_tree(path, recursive=recursive)

    def set_idmap(self, tree: int, userns: int, *, recursive: bool, what: str) -> None:
        from reference_runtime.linux import mount_api

        mount_api.set_idmap(tree, userns, recursive=recursive, what=what)

    def move_mount(self, tree: int, target: str, target_fd: int = -1) -> None:
        from reference_runtime.linux import mount_api

        mount_api.move_mount(tree, target, target_fd)

    def pin(self, root: str, host_path: str) -> tuple[str, int]:
        """A path that names exactly the inode ``host_path`` resolves to inside ``root``.

        openat2(RESOLVE_IN_ROOT) resolves in the kernel, with ``root`` as "/": a symlink swapped
        in after our own resolution cannot lead outside (CVE-2021-30465). The mount then goes
        onto /proc/self/fd/N, as runc does. Without openat2 (before Linux 5.6) the path is used.
        """
        from reference_runtime.errors import SpecError
        from reference_runtime.linux import constants as c

        prefix = root.rstrip("/") + "/"
        # What relpath would give for a path below root, without its normalising (~40 us).
        rel = (host_path[len(prefix):] if host_path.startswith(prefix)
               else os.path.relpath(host_path, root))  # fmt: skip
        try:
            rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(exc, "open", root) from None
        try:
            fd = libc.openat2(rootfd, rel, os.O_PATH | os.O_CLOEXEC,
                              c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS)  # fmt: skip
        except SyscallError as exc:
            if exc.errno == 38:  # ENOSYS: no openat2 on this kernel
                return host_path, -1
            raise
        finally:
            os.close(rootfd)
        actual = os.readlink(f"/proc/self/fd/{fd}")
        if actual != host_path:
            os.close(fd)
            raise SpecError(f"{host_path} resolved to {actual} inside the rootfs: the tree "
                            "changed while the mount was being made")  # fmt: skip
        return f"/proc/self/fd/{fd}", fd

    def unpin(self, fd: int) -> None:
        if fd >= 0:
            os.close(fd)

    def sethostname(self, name: str) -> None:
        libc.sethostname(name)

    def setdomainname(self, name: str) -> None:
        libc.setdomainname(name)


SYSTEM = System()
