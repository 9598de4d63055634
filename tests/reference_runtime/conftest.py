"""Fixtures for the reference runtime's unit tests: a recording fake of the kernel boundary."""

from __future__ import annotations

import os
from typing import Any

import pytest


class RecordingSystem:
    """Stands in for reference_runtime.linux.system.System: records calls, touches nothing.

    ``files`` maps paths to "dir", "file", ("link", target) or ("dev", type bits, major,
    minor), so path resolution and existence checks can be exercised without a real tree.
    """

    def __init__(self, files: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.files: dict[str, Any] = dict(files or {})

    def _kind(self, path: str) -> str | None:
        entry = self.files.get(os.path.normpath(path))
        if entry is None:
            return None
        return "file" if isinstance(entry, tuple) else entry

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None) -> None:  # fmt: skip
        self.calls.append(("mount", source, target, fstype, flags, data))

    def umount(self, target: str, flags: int) -> None:
        self.calls.append(("umount", target, flags))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.calls.append(("pivot_root", new_root, put_old))

    def chdir(self, path: str) -> None:
        self.calls.append(("chdir", path))

    def open_dir(self, path: str) -> int:
        self.calls.append(("open_dir", path))
        return 100

    def fchdir(self, fd: int) -> None:
        self.calls.append(("fchdir", fd))

    def close(self, fd: int) -> None:
        self.calls.append(("close", fd))

    def chroot(self, path: str) -> None:
        self.calls.append(("chroot", path))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self.calls.append(("mkdir", path))
        self.files[os.path.normpath(path)] = "dir"

    def touch(self, path: str, mode: int = 0o644) -> None:
        self.calls.append(("touch", path))
        self.files[os.path.normpath(path)] = "file"

    def mknod(self, path: str, mode: int, major: int, minor: int) -> None:
        self.calls.append(("mknod", path, major, minor))
        self.files[os.path.normpath(path)] = "file"

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.calls.append(("chown", path, uid, gid))

    def chmod(self, path: str, mode: int) -> None:
        self.calls.append(("chmod", path, mode))

    def symlink(self, target: str, link: str) -> None:
        self.calls.append(("symlink", target, link))

    def write(self, path: str, text: str) -> None:
        self.calls.append(("write", path, text))

    def write_procfs(self, path: str, text: str) -> None:
        self.calls.append(("write_procfs", path, text))

    def statvfs_flags(self, path: str) -> int:
        return 0

    def lstat_kind(self, path: str) -> str | None:
        return self._kind(path)

    def stat_kind(self, path: str) -> str | None:
        return self._kind(path)

    def node(self, path: str) -> tuple[int, int, int] | None:
        """A recorded "dev" entry is ("dev", type bits, major, minor); other kinds are none."""
        entry = self.files.get(os.path.normpath(path))
        if entry is None:
            return None
        if isinstance(entry, tuple):
            return (entry[1], entry[2], entry[3]) if entry[0] == "dev" else (0o120000, 0, 0)
        return (0o040000 if entry == "dir" else 0o100000), 0, 0

    def readlink(self, path: str) -> str | None:
        entry = self.files.get(os.path.normpath(path))
        return entry[1] if isinstance(entry, tuple) and entry[0] == "link" else None

    def mount_setattr(self, path: str, attr_set: int, attr_clr: int) -> None:
        self.calls.append(("mount_setattr", path, attr_set, attr_clr))

    def pin(self, root: str, host_path: str) -> tuple[str, int]:
        return host_path, -1  # the fake resolves nothing in a kernel

    def unpin(self, fd: int) -> None:
        pass

    def sethostname(self, name: str) -> None:
        self.calls.append(("sethostname", name))

    def setdomainname(self, name: str) -> None:
        self.calls.append(("setdomainname", name))

    def mounts(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "mount"]


@pytest.fixture
def recording_system() -> RecordingSystem:
    return RecordingSystem()


def minimal_config(**overrides: Any) -> dict[str, Any]:
    """A valid config in the shape `runc spec` writes (root.path is filled in by the test)."""
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "args": ["sh"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
        },
    }  # fmt: skip
    config.update(overrides)
    return config


@pytest.fixture
def bundle(tmp_path: Any) -> str:
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


@pytest.fixture
def make_config() -> Any:
    """``make_config(**top_level_overrides)`` → a fresh valid config dict."""
    return minimal_config
