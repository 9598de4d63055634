"""OCI bundles: a config.json and a rootfs that is an overlay on the shared image.

Layout of one bundle directory::

    <bundle>/config.json
    <bundle>/rootfs/          overlay: lower = the cached image, upper + work below
    <bundle>/overlay/upper/   what the container wrote, visible from the host
    <bundle>/overlay/work/
    <bundle>/stdout, stderr   the container's stdio when it is created (not run) by the suite

Nothing is copied per test: the image is the overlay's read-only lower layer.

A config with a new user namespace gets a bundle its root can use, as a container engine would
prepare it: the upper directory (the overlay's root directory, so the container's ``/``) belongs
to the host ids that container uid/gid 0 map to. The image itself is never chowned.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bulkhead import _sys
from bulkhead.rootfs import RootfsImage
from bulkhead.spec import Spec


@dataclass
class Bundle:
    path: Path
    image: RootfsImage
    mounted: bool = False

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def upper(self) -> Path:
        return self.path / "overlay" / "upper"

    @property
    def work(self) -> Path:
        return self.path / "overlay" / "work"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write_config(self, spec: Spec | dict[str, object]) -> None:
        data = spec.to_json_dict() if isinstance(spec, Spec) else spec
        self.config_path.write_text(json.dumps(data, indent=2) + "\n")

    def read_config(self) -> dict[str, object]:
        data = json.loads(self.config_path.read_text())
        assert isinstance(data, dict)
        return data

    def mount(self, owner: tuple[int, int] | None = None) -> None:
        """Mounts the overlay; ``owner`` (host uid, gid) is given the upper directory first."""
        for d in (self.rootfs, self.upper, self.work):
            d.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            # Before the mount: the overlay's root takes its owner from the upper directory.
            os.chown(self.upper, *owner)
        options = f"lowerdir={self.image.path},upperdir={self.upper},workdir={self.work}"
        _sys.mount("overlay", str(self.rootfs), "overlay", options)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            # Lazy detach: a runtime that failed mid-way may still hold the rootfs busy; the
            # sentinel reports the process, the mount itself is gone from the host's table.
            _sys.umount(str(self.rootfs), detach=True)
            self.mounted = False

    def remove(self) -> None:
        self.unmount()
        shutil.rmtree(self.path, ignore_errors=True)


def _host_id_of_root(mappings: object) -> int | None:
    """The host id that container id 0 maps to in a list of raw ``IDMapping`` objects."""
    for m in mappings if isinstance(mappings, list) else []:
        if not isinstance(m, dict):
            continue
        first, host, size = m.get("containerID"), m.get("hostID"), m.get("size")
        if not (isinstance(first, int) and isinstance(host, int) and isinstance(size, int)):
            continue
        if first <= 0 < first + size:
            return host - first
    return None


def mapped_root(spec: Spec | dict[str, object]) -> tuple[int, int] | None:
    """(host uid, host gid) of the container's root when ``spec`` asks for a new user namespace
    (one without a path) that maps container id 0; None otherwise.

    runc and crun build the rootfs from inside the new user namespace, and a program running as
    its root can write to its own ``/`` only if the directory belongs to a mapped id (an
    unmapped owner shows as the overflow uid, user_namespaces(7)).
    """
    data = spec.to_json_dict() if isinstance(spec, Spec) else spec
    linux = data.get("linux")
    if not isinstance(linux, dict):
        return None
    namespaces = linux.get("namespaces")
    new_user = any(
        isinstance(ns, dict) and ns.get("type") == "user" and not ns.get("path")
        for ns in (namespaces if isinstance(namespaces, list) else [])
    )
    if not new_user:
        return None
    uid = _host_id_of_root(linux.get("uidMappings"))
    gid = _host_id_of_root(linux.get("gidMappings"))
    return (uid, gid) if uid is not None and gid is not None else None


def make_bundle(path: Path, image: RootfsImage, spec: Spec | dict[str, object]) -> Bundle:
    """Creates the directory, mounts the overlay and writes config.json."""
    path.mkdir(parents=True)
    bundle = Bundle(path, image)
    try:
        bundle.mount(mapped_root(spec))
        bundle.write_config(spec)
    except BaseException:
        bundle.remove()
        raise
    return bundle
