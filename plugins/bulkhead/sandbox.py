"""Sandbox network namespaces: a network of the test's own, so nothing touches the host's.

A sandbox is a new network namespace kept alive by a bind mount of its nsfs file on a path the
suite owns (under the session's working directory, named with the session token), exactly as
``ip netns add`` does under /run/netns, but without making /run/netns a mount point on the host.
A container joins it by that path (config-linux.md: a namespace entry with ``path``). Devices are
only ever added through ``nsenter --net=<path>``, after checking that the path really is a
network namespace other than the host's: a failure can never put them in the host's namespace.

The leak sentinel sees a forgotten sandbox as a mount under the session's directory (token and
path both match) and unmounts it, which ends the namespace and every device in it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bulkhead import _sys

# IFNAMSIZ is 16 with the terminating NUL (<linux/if.h>).
IFNAMSIZ = 16
# Device kinds that need no peer and no hardware, in order of preference: some kernels are
# built without the dummy driver (this build machine's is), and an empty bridge serves as well.
STANDALONE_KINDS = ("dummy", "bridge")


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr}")


def netns_inode(path: str | Path) -> int:
    """The inode of a network namespace, from its nsfs file or a /proc/<pid>/ns/net link."""
    return os.stat(path).st_ino


@dataclass
class SandboxNetns:
    path: Path

    @property
    def inode(self) -> int:
        return netns_inode(self.path)

    def _check_not_the_hosts(self) -> None:
        # The bind mount is what makes the path a namespace; a plain file would make nsenter
        # fail, but a path bound to the host's namespace would not. Refuse both.
        mounted = any(
            line.split()[4] == str(self.path)
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
        )
        if not mounted or self.inode == netns_inode("/proc/self/ns/net"):
            raise RuntimeError(f"{self.path} is not a network namespace apart from the host's")

    def add_dummy(self, name: str) -> str:
        """Adds a standalone device ``name`` inside the sandbox (never in the host's namespace).

        A dummy device where the kernel has the driver, else an empty bridge; returns the kind.
        """
        if len(name) >= IFNAMSIZ:
            raise ValueError(f"device name {name!r} is longer than {IFNAMSIZ - 1} characters")
        self._check_not_the_hosts()
        errors = []
        for kind in STANDALONE_KINDS:
            # "name" spelled out: ip(8) would read a bare leading word such as "a" as "address".
            argv = ("nsenter", f"--net={self.path}", "--", "ip", "link", "add", "name", name,
                    "type", kind)  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return kind
            errors.append(f"{kind}: {done.stderr.strip()}")
        raise RuntimeError(f"cannot add a device to {self.path}: {'; '.join(errors)}")

    def devices(self) -> set[str]:
        """The devices in the sandbox, as its own /sys/class/net would list them."""
        self._check_not_the_hosts()
        done = subprocess.run(
            ["nsenter", f"--net={self.path}", "--", "ip", "-o", "link", "show"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        # "1: lo: <LOOPBACK> ..." (a device in a namespace can read "name@peer").
        return {line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines()}


@contextlib.contextmanager
def sandbox_netns(path: Path) -> Iterator[SandboxNetns]:
    """A new network namespace bound on ``path`` (a new file), gone when the block ends."""
    path.touch(exist_ok=False)
    try:
        # unshare(1) --net=FILE makes the namespace persistent by bind-mounting it on FILE from
        # the calling (host) mount namespace; the process itself exits at once.
        _run("unshare", f"--net={path}", "--", "true")
        sandbox = SandboxNetns(path)
        try:
            sandbox._check_not_the_hosts()
            yield sandbox
        finally:
            # The last reference goes with the mount (no process lives in it): the kernel then
            # destroys the namespace and the devices in it.
            with contextlib.suppress(OSError):
                _sys.umount(str(path), detach=True)
    finally:
        path.unlink(missing_ok=True)
