"""What this host offers: cgroup layout, namespaces, overlayfs, privileges.

Probed once per session from /proc and /sys (no container is started to find out) and shown in
the report header, so a reader of a report knows the ground the runtime stood on.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# statfs(2) magic numbers, from <linux/magic.h>.
CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994


@dataclass(frozen=True)
class CgroupLayout:
    """How cgroups are mounted: ``unified`` (v2 only), ``legacy`` (v1 only) or ``hybrid``."""

    mode: str
    v1_controllers: frozenset[str] = frozenset()
    v2_controllers: frozenset[str] = frozenset()
    v2_mount: Path | None = None

    def describe(self) -> str:
        parts = [self.mode]
        if self.v1_controllers:
            parts.append("v1: " + ",".join(sorted(self.v1_controllers)))
        if self.v2_mount is not None:
            ctrls = ",".join(sorted(self.v2_controllers)) or "no controllers"
            parts.append(f"v2 at {self.v2_mount}: {ctrls}")
        return "; ".join(parts)


def parse_mountinfo(text: str) -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of each line of a /proc/<pid>/mountinfo."""
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) > 4 and rfields:
            out.append((fields[4], rfields[0], rfields[2] if len(rfields) > 2 else ""))
    return out


def _mounts() -> list[tuple[str, str, str]]:
    """Every mount this process sees."""
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def _known_controllers() -> set[str]:
    """Controller names the kernel knows (/proc/cgroups), so mount options such as ``xattr``
    or ``release_agent=...`` on a v1 mount are not taken for controllers."""
    try:
        lines = Path("/proc/cgroups").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line and not line.startswith("#")}


def probe_cgroups() -> CgroupLayout:
    known = _known_controllers()
    v1: set[str] = set()
    v2_mount: Path | None = None
    for point, fstype, opts in _mounts():
        if fstype == "cgroup2" and v2_mount is None:
            v2_mount = Path(point)
        elif fstype == "cgroup":
            v1.update(o for o in opts.split(",") if o in known or o.startswith("name="))
    v2: frozenset[str] = frozenset()
    if v2_mount is not None:
        try:
            v2 = frozenset((v2_mount / "cgroup.controllers").read_text().split())
        except OSError:
            v2 = frozenset()
    named = {c for c in v1 if c.startswith("name=")}
    controllers = frozenset(v1 - named)
    if v2_mount is not None and not controllers:
        mode = "unified"
    elif v2_mount is not None:
        mode = "hybrid"
    else:
        mode = "legacy"
    return CgroupLayout(mode, controllers, v2, v2_mount)


def _ns_available(kind: str) -> bool:
    return Path(f"/proc/self/ns/{kind}").exists()


def _overlay_available() -> bool:
    try:
        return any(
            line.split()[-1] == "overlay"
            for line in Path("/proc/filesystems").read_text().splitlines()
        )
    except OSError:
        return False


def _userns_available() -> bool:
    if not _ns_available("user"):
        return False
    # Debian kernels gate unprivileged user namespaces on this knob; root may always create them.
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        return True
    return limit > 0


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


@dataclass(frozen=True)
class HostFacts:
    kernel: str
    is_root: bool
    cgroups: CgroupLayout
    namespaces: frozenset[str]
    userns: bool
    overlay: bool
    effective_caps: int = field(repr=False)

    def has_cap(self, number: int) -> bool:
        return bool(self.effective_caps >> number & 1)

    def describe(self) -> list[str]:
        return [
            f"kernel {self.kernel}, {'root' if self.is_root else 'not root'}, "
            f"overlay {'yes' if self.overlay else 'no'}, user namespaces "
            f"{'yes' if self.userns else 'no'}",
            f"cgroups: {self.cgroups.describe()}",
            "namespaces: " + ",".join(sorted(self.namespaces)),
        ]


@functools.cache
def probe_host() -> HostFacts:
    kinds = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
    return HostFacts(
        kernel=platform.release(),
        is_root=os.geteuid() == 0,
        cgroups=probe_cgroups(),
        namespaces=frozenset(k for k in kinds if _ns_available(k)),
        userns=_userns_available(),
        overlay=_overlay_available(),
        effective_caps=_effective_caps(),
    )
