"""OCI bundles: a config.json and a rootfs that is an overlay on the shared image.

Layout of one bundle directory::

    <bundle>/config.json
    <bundle>/rootfs/          overlay: lower = the cached image, upper + work below
    <bundle>/overlay/upper/   what the container wrote, visible from the host
    <bundle>/overlay/work/
    <bundle>/stdout, stderr   the container's stdio when it is created (not run) by the suite

Nothing is copied per test: the image is the overlay's read-only lower layer.
"""

from __future__ import annotations

import json
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

    def mount(self) -> None:
        for d in (self.rootfs, self.upper, self.work):
            d.mkdir(parents=True, exist_ok=True)
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


def make_bundle(path: Path, image: RootfsImage, spec: Spec | dict[str, object]) -> Bundle:
    """Creates the directory, mounts the overlay and writes config.json."""
    path.mkdir(parents=True)
    bundle = Bundle(path, image)
    try:
        bundle.mount()
        bundle.write_config(spec)
    except BaseException:
        bundle.remove()
        raise
    return bundle
