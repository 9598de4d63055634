"""Every path the engine uses, in one place (docker's layout; docs/engine.md walks through it).

``root`` (``--root``, default /var/lib/bulkhead) is what survives a reboot: images, layers,
containers' files. ``exec_root`` (``--exec-root``, default /run/bulkhead) is what only makes sense
while the machine is up: network namespaces, bundles, the OCI runtime's own state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/bulkhead")
DEFAULT_EXEC_ROOT = Path("/run/bulkhead")


@dataclass(frozen=True)
class Layout:
    root: Path
    exec_root: Path

    @property
    def image_db(self) -> Path:
        return self.root / "image" / "overlay2"

    @property
    def overlay2(self) -> Path:
        return self.root / "overlay2"

    @property
    def links(self) -> Path:
        return self.overlay2 / "l"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def network(self) -> Path:
        return self.root / "network"

    @property
    def netns_dir(self) -> Path:
        return self.exec_root / "netns"

    @property
    def bundles(self) -> Path:
        return self.exec_root / "bundles"

    def runtime_root(self, name: str) -> Path:
        return self.exec_root / "runtime" / name

    def ensure(self) -> None:
        # 0700 as docker's root: layer diffs hold setuid files and other users' data.
        for top in (self.root, self.exec_root):
            top.mkdir(parents=True, exist_ok=True)
            os.chmod(top, 0o700)
        for d in (self.image_db, self.links, self.containers, self.network, self.netns_dir,
                  self.bundles, self.exec_root / "runtime"):  # fmt: skip
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the engine's lock: one mutating command at a time per root (names, addresses
        and layer ids are allocated under it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "engine.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
