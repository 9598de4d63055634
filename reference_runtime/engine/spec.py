"""The OCI bundle config the engine hands a runtime: the image's config and ``run``'s options over
docker's defaults (capabilities, masked and read-only paths, devices, seccomp).

The lists are docker's as of 2026 (research/security.md §2-3): masked paths include the powercap
and thermal entries added for GHSA-jq35-85cj-fj4p and GHSA-6fw5-f8r9-fgfm.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_runtime.engine import seccomp
from reference_runtime.engine.errors import EngineError

# The oldest version that has every field written here, so that old runtimes take it too: crun
# 1.8.1 refuses an ociVersion newer than it knows ("unknown version specified").
OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHM_SIZE = 64 * 1024 * 1024  # docker's default --shm-size

# containerd's defaultUnixCaps, which docker uses: bounding, effective and permitted; never
# inheritable (CVE-2022-24769).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# The device cgroup's allow list (docker's defaults): mknod of anything, and use of the
# standard nodes the runtime creates (config-linux.md "Default Devices"), ptys and tun.
_ALLOWED_DEVICES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 136, None, "rwm"), ("c", 10, 200, "rwm"),
)  # fmt: skip


def masked_paths() -> list[str]:
    """Docker's list, plus each CPU's thermal_throttle directory where this host has one
    (docker computes these at start for the same reason: they leak thermal interrupt counts)."""
    thermal = sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"))
    return [*MASKED_PATHS, *thermal]


@dataclass(frozen=True)
class ContainerPaths:
    hostname: Path
    hosts: Path
    resolv_conf: Path
    shm: Path


@dataclass
class RunSpec:
    """What ``run`` decided, independent of how the runtime is told."""

    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    hostname: str
    read_only: bool = False
    memory: int | None = None
    pids_limit: int | None = None
    masked: list[str] = field(default_factory=masked_paths)
    readonly: list[str] = field(default_factory=lambda: list(READONLY_PATHS))


def process_args(image_config: dict[str, Any], cmd: list[str]) -> list[str]:
    """docker's rule: the entrypoint, then ``run``'s command if given, else the image's Cmd."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    args = entrypoint + (cmd or list(image_config.get("Cmd") or []))
    if not args:
        raise EngineError("failed to create container: no command given and the image has none")
    return args


def environment(image_config: dict[str, Any], extra: list[str], hostname: str) -> list[str]:
    """The image's Env, then HOSTNAME, then ``-e`` (later wins, as in docker)."""
    merged: dict[str, str] = {}
    for item in [*(image_config.get("Env") or []), f"HOSTNAME={hostname}", *extra]:
        key, sep, value = item.partition("=")
        if not key:
            raise EngineError(f"failed to create container: bad environment variable {item!r}")
        merged[key] = value if sep else ""
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def resolve_user(user: str, rootfs: Path) -> tuple[int, int, list[int]]:
    """An image's ``User`` ("name", "uid", "name:group", "uid:gid") through the image's own
    /etc/passwd and /etc/group, read inside the rootfs without following links out of it."""
    if not user:
        return 0, 0, []
    name, _, group = user.partition(":")
    passwd = _table(rootfs, "etc/passwd")
    uid: int | None = int(name) if name.isdigit() else None
    gid: int | None = None
    for row in passwd:
        if len(row) > 3 and (row[0] == name or (uid is not None and row[2] == str(uid))):
            uid, gid, name = int(row[2]), int(row[3]), row[0]
            break
    if uid is None:
        raise EngineError(f"failed to create container: user {name!r} is not in /etc/passwd")
    groups = _table(rootfs, "etc/group")
    if group:
        gid = int(group) if group.isdigit() else None
        if gid is None:
            gid = next((int(r[2]) for r in groups if len(r) > 2 and r[0] == group), None)
            if gid is None:
                raise EngineError(
                    f"failed to create container: group {group!r} is not in /etc/group"
                )
    member_of = [
        int(r[2]) for r in groups if len(r) > 3 and name in r[3].split(",") and r[2].isdigit()
    ]
    return uid, gid if gid is not None else 0, member_of


def _table(rootfs: Path, rel: str) -> list[list[str]]:
    path = rootfs / rel
    if path.is_symlink():
        return []  # an image's /etc/passwd pointing elsewhere is not followed on the host
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _device_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for kind, major, minor, access in _ALLOWED_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def _bind(destination: str, source: Path, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", "rprivate", *options]}  # fmt: skip


def oci_config(
    run: RunSpec,
    *,
    rootfs: Path,
    netns: Path,
    paths: ContainerPaths,
    cgroups_path: str,
    cgroup_v2: bool,
) -> dict[str, Any]:
    caps = list(DEFAULT_CAPABILITIES)
    ro = ["ro"] if run.read_only else []
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        _bind("/dev/shm", paths.shm),
        _bind("/etc/resolv.conf", paths.resolv_conf, *ro),
        _bind("/etc/hostname", paths.hostname, *ro),
        _bind("/etc/hosts", paths.hosts, *ro),
    ]  # fmt: skip
    namespaces: list[dict[str, Any]] = [
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": str(netns)},
    ]  # fmt: skip
    if cgroup_v2:
        namespaces.append({"type": "cgroup"})  # docker's default on v2: a private cgroupns
    resources: dict[str, Any] = {"devices": _device_rules()}
    if run.memory is not None:
        resources["memory"] = {"limit": run.memory}
    if run.pids_limit is not None:
        resources["pids"] = {"limit": run.pids_limit}
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": run.uid, "gid": run.gid, "additionalGids": run.additional_gids},
            "args": run.args,
            "env": run.env,
            "cwd": run.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        },
        "root": {"path": str(rootfs), "readonly": run.read_only},
        "hostname": run.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "maskedPaths": run.masked,
            "readonlyPaths": run.readonly,
            "seccomp": seccomp.default_profile(),
        },
    }


SIZE_SUFFIXES = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str, what: str) -> int:
    """docker's sizes: a byte count, or a number with b, k, m or g (powers of 1024)."""
    raw = text.strip().lower()
    unit = SIZE_SUFFIXES.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    if not number.isdigit():
        raise EngineError(f"failed to parse {what} {text!r}: expected bytes or N[bkmg]")
    value = int(number) * (unit or 1)
    if value <= 0:
        raise EngineError(f"failed to parse {what} {text!r}: must be more than 0")
    return value
