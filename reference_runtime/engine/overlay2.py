"""The overlay2 layer store, laid out as docker's overlay2 storage driver lays out its own.

    overlay2/<id>/diff/     the layer's files (whiteouts as overlayfs's 0:0 char devices)
    overlay2/<id>/link      the layer's short name: 26 characters of [A-Z0-9]
    overlay2/<id>/lower     the short names of every layer below, nearest first: "l/AAA:l/BBB"
                            (absent for a base layer)
    overlay2/<id>/work/     overlayfs's workdir (every layer with a parent, as docker)
    overlay2/<id>/merged/   a container's rw layer only: where the overlay is mounted
    overlay2/l/<short>      -> ../<id>/diff

A container gets two layers above its image's top layer: ``<rw>-init`` with the files every
container has (empty etc/hostname, etc/hosts, etc/resolv.conf to bind-mount over, dev/console,
dev/pts, dev/shm, proc, sys, .dockerenv) and ``<rw>``, the upper dir its writes go to. The overlay
is mounted with lowerdir, upperdir and workdir relative to overlay2/ (see mount()).

Every layer id is 64 random hex digits (not the image's or container's id, as docker).
"""

from __future__ import annotations

import base64
import errno
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.errors import SyscallError
from reference_runtime.linux import constants, libc, relmount

SHORT_LEN = 26
# docker's overlay2 maxDepth: 128 lower dirs of ~29 bytes ("l/" + 26 + ":") fit in one page of
# mount data with the upper and work dirs.
MAX_LOWERS = 128
# mount(2) copies data into one page; the terminating NUL needs its byte.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_ID = re.compile(r"^[0-9a-f]{64}(-init)?$")
_SHORT = re.compile(r"^[A-Z0-9]{26}$")
# docker adds index=off where the module knows the option: with the inodes index on, an upper
# dir is tied to the lower layers it was first mounted over (overlayfs.rst, "Sharing and copying
# layers"), and image layers are shared by many containers here.
_INDEX_PARAM = Path("/sys/module/overlay/parameters/index")


@dataclass(frozen=True)
class ContainerLayers:
    rw_id: str
    init_id: str  # rw_id + "-init"
    merged: Path
    lowerdir: str  # the l/ names, colon-separated, nearest first (the init layer's comes first)


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _short_name() -> str:
    # base32 (A-Z, 2-7) of 128 random bits, cut to 26: docker's shape for l/ names.
    return base64.b32encode(secrets.token_bytes(16)).decode()[:SHORT_LEN]


def _unescape_mountinfo(field: str) -> str:
    # proc(5): spaces, tabs, newlines and backslashes in mountinfo paths are octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point in the caller's mount namespace (mountinfo, not stat:
    a bind mount of the same filesystem has the same st_dev)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return any(_unescape_mountinfo(line.split()[4]) == target for line in f)


class Overlay2:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = layout.overlay2
        self.links = layout.links

    # -- paths ---------------------------------------------------------------------------------

    def _dir(self, cache_id: str) -> Path:
        if not _ID.match(cache_id):
            raise EngineError(f"failed to find layer {cache_id!r}: not a layer id")
        return self.root / cache_id

    def diff_dir(self, cache_id: str) -> Path:
        return self._dir(cache_id) / "diff"

    def _link(self, cache_id: str) -> str:
        name = (self._dir(cache_id) / "link").read_text().strip()
        if not _SHORT.match(name):
            raise EngineError(f"failed to read layer {cache_id}: bad link name {name!r}")
        return name

    def _lower(self, cache_id: str) -> str:
        try:
            return (self._dir(cache_id) / "lower").read_text().strip()
        except FileNotFoundError:
            return ""  # a base layer

    def lower_dirs(self, cache_id: str) -> list[Path]:
        """The absolute diff dirs below ``cache_id``, nearest first."""
        out = []
        for entry in filter(None, self._lower(cache_id).split(":")):
            short = entry.removeprefix("l/")
            target = os.readlink(self.links / short) if _SHORT.match(short) else ""
            # Each l/ link is "../<id>/diff"; anything else was not written by this store.
            parts = target.split("/")
            if len(parts) != 3 or parts[0] != ".." or parts[2] != "diff" or not _ID.match(parts[1]):
                raise EngineError(f"failed to read layer {cache_id}: bad lower entry {entry!r}")
            out.append(self.root / parts[1] / "diff")
        return out

    # -- creating and removing layers ----------------------------------------------------------

    def _lower_for(self, parent: str | None) -> str:
        if parent is None:
            return ""
        below = self._lower(parent)
        lower = f"l/{self._link(parent)}" + (f":{below}" if below else "")
        if lower.count(":") + 1 > MAX_LOWERS:
            raise EngineError(f"failed to create layer: more than {MAX_LOWERS} layers below it")
        return lower

    def _finish(self, cache_id: str, lower: str) -> None:
        """Writes link (+ lower, work/) of a layer whose diff/ exists, and its l/ symlink."""
        layer = self.root / cache_id
        short = _short_name()
        (layer / "link").write_text(short)
        if lower:
            (layer / "lower").write_text(lower)
            (layer / "work").mkdir(mode=0o700)
        self.links.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../{cache_id}/diff", self.links / short)

    def _create(self, cache_id: str, parent: str | None) -> str:
        lower = self._lower_for(parent)
        layer = self._dir(cache_id)
        # 0701 as docker: other users may traverse to the diff (a user-namespaced container's
        # root must reach its files) but not list the layer store.
        layer.mkdir(mode=0o701)
        try:
            (layer / "diff").mkdir(mode=0o755)
            self._finish(cache_id, lower)
        except BaseException:
            self.remove_layer(cache_id)
            raise
        return cache_id

    def create_layer(self, parent: str | None) -> str:
        """A new, empty layer above ``parent`` (a cache id, or None for a base layer)."""
        try:
            return self._create(secrets.token_hex(32), parent)
        except OSError as exc:
            raise EngineError(f"failed to create layer: {_reason(exc)}") from None

    def stage_layer(self) -> Path:
        """A hidden directory with an empty diff/ to extract a layer into before it is known to
        be good; commit_layer() makes it a layer, discard_staged() drops it. A load killed half
        way leaves only such a directory, which collect_staged() removes."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{secrets.token_hex(8)}"
        staging.mkdir(mode=0o701)
        (staging / "diff").mkdir(mode=0o755)
        return staging

    def commit_layer(self, staging: Path, parent: str | None) -> str:
        lower = self._lower_for(parent)
        cache_id = secrets.token_hex(32)
        os.rename(staging, self.root / cache_id)
        try:
            self._finish(cache_id, lower)
        except BaseException:
            self.remove_layer(cache_id)
            raise
        return cache_id

    def discard_staged(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def collect_staged(self) -> list[Path]:
        found = sorted(self.root.glob(".staging-*")) if self.root.is_dir() else []
        for staging in found:
            self.discard_staged(staging)
        return found

    def remove_layer(self, cache_id: str) -> None:
        """Removes a layer's directory and its l/ link; a layer already gone is fine."""
        layer = self._dir(cache_id)
        if (layer / "merged").is_dir() and is_mounted(layer / "merged"):
            # rmtree would descend into the mount and delete through it.
            raise EngineError(f"failed to remove layer {cache_id}: its overlay is still mounted")
        try:
            short = self._link(cache_id)
        except (FileNotFoundError, EngineError):
            short = ""
        if short:
            with _tolerate(errno.ENOENT):  # removed by an earlier, interrupted call
                os.unlink(self.links / short)
        if layer.exists():
            shutil.rmtree(layer)

    # -- containers ----------------------------------------------------------------------------

    def _populate_init(self, diff: Path) -> None:
        # docker's setupInitLayer: mount points and files the runtime and the engine bind over,
        # so they exist whatever the image holds. Files are 0755 as docker makes them.
        for d in ("dev", "dev/pts", "dev/shm", "etc", "proc", "sys"):
            (diff / d).mkdir(mode=0o755)
            os.chmod(diff / d, 0o755)
        for f in (".dockerenv", "dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
            fd = os.open(diff / f, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
            os.fchmod(fd, 0o755)
            os.close(fd)
        os.symlink("/proc/mounts", diff / "etc" / "mtab")

    def create_container_layers(self, image_top: str) -> ContainerLayers:
        """``<rw>-init`` above ``image_top`` and ``<rw>`` above it, with merged/; not mounted."""
        self._dir(image_top)  # validates the id before anything is made
        if not (self.root / image_top / "diff").is_dir():
            raise EngineError(f"failed to create container layers: no layer {image_top}")
        rw_id = secrets.token_hex(32)
        init_id = f"{rw_id}-init"
        try:
            self._create(init_id, image_top)
            try:
                self._populate_init(self.diff_dir(init_id))
                self._create(rw_id, init_id)
                try:
                    (self.root / rw_id / "merged").mkdir(mode=0o700)
                except BaseException:
                    self.remove_layer(rw_id)
                    raise
            except BaseException:
                self.remove_layer(init_id)
                raise
        except OSError as exc:  # a full disk, most likely: nothing of either layer is left
            raise EngineError(f"failed to create container layers: {_reason(exc)}") from None
        return ContainerLayers(rw_id, init_id, self.root / rw_id / "merged", self._lower(rw_id))

    def mount_data(self, rw_id: str) -> str:
        lower = self._lower(rw_id)
        if not lower:
            raise EngineError(f"failed to mount layer {rw_id}: it has no lower layers")
        data = f"lowerdir={lower},upperdir={rw_id}/diff,workdir={rw_id}/work"
        if _INDEX_PARAM.exists():
            data += ",index=off"
        if len(data) >= PAGE_SIZE:
            raise EngineError(
                f"failed to mount layer {rw_id}: mount data exceeds {PAGE_SIZE} bytes"
            )
        return data

    def mount(self, rw_id: str) -> Path:
        """Mounts the container's overlay at overlay2/<rw>/merged (a no-op if it is mounted).

        The paths in the mount data are relative to overlay2/ (docker's way to fit 128 layers in
        the one page mount(2) takes; see reference_runtime/linux/relmount.py)."""
        merged = self._dir(rw_id) / "merged"
        if is_mounted(merged):
            return merged
        data = self.mount_data(rw_id)
        merged.mkdir(mode=0o700, exist_ok=True)
        try:
            relmount.mount_in(str(self.root), "overlay", str(merged), "overlay", 0, data)
        except SyscallError as exc:
            raise EngineError(f"failed to mount the overlay of {rw_id}: {exc}") from None
        return merged

    def unmount(self, rw_id: str) -> None:
        merged = self._dir(rw_id) / "merged"
        if not merged.is_dir() or not is_mounted(merged):
            return
        try:
            libc.umount2(str(merged), 0)
        except SyscallError as exc:
            if exc.errno == errno.EBUSY:
                # A process still has a file open in it: detach now, the kernel frees it when
                # the last user goes (umount(2) MNT_DETACH), as docker's overlay2 Put does.
                libc.umount2(str(merged), constants.MNT_DETACH)
            elif exc.errno not in (errno.EINVAL, errno.ENOENT):  # not (any more) a mount point
                raise EngineError(f"failed to unmount {merged}: {exc}") from None

    def remove_container_layers(self, rw_id: str) -> None:
        self.unmount(rw_id)
        self.remove_layer(rw_id)
        self.remove_layer(f"{rw_id}-init")

    def graph_driver_data(self, cache_id: str) -> dict[str, str]:
        """docker inspect's GraphDriver.Data: absolute paths; LowerDir only for a layer with
        layers below it (for a container: its init layer's diff, then the image's)."""
        layer = self._dir(cache_id)
        data = {}
        lowers = self.lower_dirs(cache_id)
        if lowers:
            data["LowerDir"] = ":".join(str(p) for p in lowers)
        data["MergedDir"] = str(layer / "merged")
        data["UpperDir"] = str(layer / "diff")
        data["WorkDir"] = str(layer / "work")
        return data


class _tolerate:
    """Suppresses OSError with the given errnos (each use says why)."""

    def __init__(self, *errnos: int) -> None:
        self.errnos = errnos

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(exc, OSError) and exc.errno in self.errnos
