"""Extracting one layer tar into an empty diff directory, safely, and converting OCI whiteouts to
overlayfs's own.

A layer is hostile input: its names may climb out ("../../etc/x"), be absolute, go through a
symlink the same layer planted ("etc2 -> /etc", then "etc2/pwned"), or be device nodes that would
hand the container the host's memory or disks. So no path is ever joined and resolved by the
kernel: every parent is opened one component at a time with O_NOFOLLOW|O_DIRECTORY relative to
the directory above it, starting from a descriptor of the diff dir itself, and each entry is
created relative to its parent's descriptor (mkdirat, openat O_EXCL|O_NOFOLLOW, symlinkat,
linkat without AT_SYMLINK_FOLLOW, mknodat). A symlink can be created, never walked through.

Refused (LayerError, a one-line reason): absolute names (only a leading "./" is stripped),
".." components, character and block devices, hard links whose target is outside the layer or
not extracted yet, parents that are symlinks or not directories, whiteouts naming "." or "..",
overlayfs's own trusted.overlay.* xattrs (a layer could otherwise plant redirects or opaque
markers under another name). Kept: modes (with setuid/setgid/sticky), owners, mtimes,
xattrs (PAX SCHILY.xattr.*), absolute and relative symlinks, fifos.

Whiteouts (image-spec layer.md, "Whiteouts") become what overlayfs reads (kernel
Documentation/filesystems/overlayfs.rst): ".wh.NAME" -> a 0:0 character device NAME,
".wh..wh..opq" -> the xattr trusted.overlay.opaque="y" on its directory.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# aufs's metadata entries (".wh..wh.plnk", ".wh..wh.aufs"): docker skips them, so do we.
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
PAX_XATTR_PREFIX = "SCHILY.xattr."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class LayerError(Exception):
    """A layer that cannot be extracted safely; str() is the one-line reason."""


@dataclass(frozen=True)
class LayerResult:
    diff_id: str  # "sha256:<hex>" of the whole uncompressed tar stream
    size: int  # bytes of regular file data written (hard links counted once)


class _HashingReader:
    """Reads through to ``raw`` and hashes every byte read: the diff id is the digest of the
    uncompressed tar as a whole, including what follows the end-of-archive blocks."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _components(name: str, what: str) -> list[str]:
    """A member name as path components inside the layer; refuses what would leave it."""
    if name.startswith("/"):
        raise LayerError(f"{what} {name} is an absolute path (layer members are relative)")
    stripped = name
    while stripped.startswith("./"):
        stripped = stripped[2:]
    parts = [p for p in stripped.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise LayerError(f"{what} {name} escapes the layer")
    if ".." in parts:
        # "a/../b" stays inside, but nothing legitimate writes it: resolving it would need the
        # kernel to walk "a", which may be a symlink by then.
        raise LayerError(f"{what} {name} has a '..' component")
    return parts


class _Extractor:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.size = 0
        self.dirs: list[tuple[list[str], int]] = []  # (path, mtime ns): set last

    @contextlib.contextmanager
    def _parent(self, label: str, parts: list[str], *, create: bool) -> Iterator[int]:
        """A descriptor of the directory holding ``parts[-1]``, reached without following a
        symlink; missing parents are created (0755, as docker's unpacker does) if ``create``.
        ``label`` starts the error message ("member etc2/pwned")."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        where = "/".join(parts[: i + 1])
                        raise LayerError(f"{label}: {where} is not in the layer") from None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chmod(part, 0o755, dir_fd=fd, follow_symlinks=False)
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    where = "/".join(parts[: i + 1])
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                    raise LayerError(
                        f"{label}: {where} is {kind}; nothing goes through it"
                    ) from None
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _clear(self, leaf: str, parent: int, keep_dir: bool) -> None:
        """Tar semantics: a later member replaces an earlier one of the same name (a directory
        stays a directory when the new member is one too)."""
        st = self._lstat(leaf, parent)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(leaf, dir_fd=parent)
        else:
            os.unlink(leaf, dir_fd=parent)

    def _xattrs(self, member: tarfile.TarInfo) -> dict[str, bytes]:
        out = {}
        for key, value in member.pax_headers.items():
            if key.startswith(PAX_XATTR_PREFIX):
                attr = key[len(PAX_XATTR_PREFIX) :]
                if attr.startswith(OVERLAY_XATTR_PREFIX):
                    raise LayerError(f"member {member.name} carries the overlayfs xattr {attr}")
                out[attr] = value.encode("utf-8", "surrogateescape")
        return out

    @staticmethod
    def _mtime_ns(member: tarfile.TarInfo) -> int:
        return int(member.mtime * 1_000_000_000)

    def _attrs(self, fd: int, member: tarfile.TarInfo, xattrs: dict[str, bytes]) -> None:
        # chown first: it clears setuid/setgid, which the chmod after it puts back.
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for attr, value in xattrs.items():
            os.setxattr(fd, attr, value)

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        parts = _components(name, "member")
        if member.ischr() or member.isblk():
            kind = "character" if member.ischr() else "block"
            raise LayerError(f"member {name} is a {kind} device (device nodes are refused)")
        xattrs = self._xattrs(member)
        if not parts:  # "." or "./": the layer's root directory itself
            if not member.isdir():
                raise LayerError(f"member {name} names the layer root but is not a directory")
            self._attrs(self.root_fd, member, xattrs)
            self.dirs.append(([], self._mtime_ns(member)))
            return
        leaf = parts[-1]
        with self._parent(f"member {name}", parts, create=True) as parent:
            if leaf.startswith(WHITEOUT_PREFIX):
                self._whiteout(name, leaf, parent, member)
            elif member.isdir():
                self._clear(leaf, parent, keep_dir=True)
                if self._lstat(leaf, parent) is None:
                    os.mkdir(leaf, 0o700, dir_fd=parent)
                fd = os.open(leaf, _DIR_FLAGS, dir_fd=parent)
                try:
                    self._attrs(fd, member, xattrs)
                finally:
                    os.close(fd)
                self.dirs.append((parts, self._mtime_ns(member)))
            elif member.isreg():
                self._clear(leaf, parent, keep_dir=False)
                self._file(tar, member, leaf, parent, xattrs)
            elif member.issym():
                self._clear(leaf, parent, keep_dir=False)
                # The target is kept as written (an absolute one is valid inside the container);
                # it is never resolved here.
                os.symlink(member.linkname, leaf, dir_fd=parent)
                os.chown(leaf, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
                self._lutime(leaf, parent, member)
            elif member.islnk():
                self._hardlink(member, leaf, parent)
            elif member.isfifo():
                self._clear(leaf, parent, keep_dir=False)
                os.mknod(leaf, stat.S_IFIFO | 0o600, dir_fd=parent)
                fd = os.open(leaf, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=parent)  # fmt: skip
                try:
                    self._attrs(fd, member, xattrs)
                finally:
                    os.close(fd)
                self._lutime(leaf, parent, member)
            else:
                raise LayerError(f"member {name} has an unsupported tar type {member.type!r}")

    def _lutime(self, leaf: str, parent: int, member: tarfile.TarInfo) -> None:
        ns = self._mtime_ns(member)
        os.utime(leaf, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def _file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, leaf: str, parent: int,
              xattrs: dict[str, bytes]) -> None:  # fmt: skip
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(leaf, flags, 0o600, dir_fd=parent)
        try:
            src = tar.extractfile(member)
            if src is not None:
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            self._attrs(fd, member, xattrs)
            ns = self._mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
        self.size += member.size

    def _hardlink(self, member: tarfile.TarInfo, leaf: str, parent: int) -> None:
        name = member.name
        try:
            target = _components(member.linkname, f"hard link {name} ->")
        except LayerError as exc:
            raise LayerError(f"{exc} (target outside the layer)") from None
        if not target:
            raise LayerError(f"hard link {name} -> {member.linkname} names the layer root")
        label = f"hard link {name} -> {member.linkname}"
        with self._parent(label, target, create=False) as tparent:
            st = self._lstat(target[-1], tparent)
            if st is None:
                raise LayerError(f"{label}: target is not in the layer (not extracted yet)")
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"{label}: target is a directory")
            existing = self._lstat(leaf, parent)
            if existing is not None and existing.st_ino == st.st_ino:
                return  # the same link again
            self._clear(leaf, parent, keep_dir=False)
            # linkat(2) without AT_SYMLINK_FOLLOW: a symlink target is linked itself, not followed.
            os.link(target[-1], leaf, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)  # fmt: skip

    def _whiteout(self, name: str, leaf: str, parent: int, member: tarfile.TarInfo) -> None:
        if leaf == OPAQUE_MARKER:
            # The directory hides everything of the layers below it; entries of this layer in
            # it stay (image-spec layer.md, "Opaque Whiteout").
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if leaf.startswith(AUFS_META_PREFIX):
            return
        hidden = leaf[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise LayerError(f"whiteout {name} names {hidden or 'nothing'}")
        self._clear(hidden, parent, keep_dir=False)
        # overlayfs.rst: "A whiteout is created as a character device with 0/0 device number".
        os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
        os.chown(hidden, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        # Directory mtimes last: every entry created in a directory changed its mtime.
        for parts, ns in reversed(self.dirs):
            if not parts:
                os.utime(self.root_fd, ns=(ns, ns))
                continue
            with self._parent("directory " + "/".join(parts), parts, create=False) as parent:
                os.utime(parts[-1], ns=(ns, ns), dir_fd=parent, follow_symlinks=False)


def extract_layer(stream: Readable, diff_dir: Path) -> LayerResult:
    """Extracts the uncompressed tar ``stream`` into the existing, empty ``diff_dir``.

    Raises LayerError for a refused or corrupt layer and OSError for what the filesystem
    refuses (ENOSPC, ...); the caller removes ``diff_dir`` on either.
    """
    reader = _HashingReader(stream)
    root_fd = os.open(diff_dir, _DIR_FLAGS)
    try:
        extractor = _Extractor(root_fd)
        try:
            # Stream mode ("r|"): one pass, no seeking, so the digest sees every byte once.
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    extractor.member(tar, member)
        except tarfile.TarError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LayerError(f"corrupt layer tar: {first}") from None
        except EOFError:
            raise LayerError("corrupt layer tar: unexpected end of data") from None
        except (zlib.error, gzip.BadGzipFile) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LayerError(f"corrupt compressed layer: {first}") from None
        extractor.finish()
        reader.drain()
    finally:
        os.close(root_fd)
    return LayerResult("sha256:" + reader.hash.hexdigest(), extractor.size)
