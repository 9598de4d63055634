"""The parts of config.json the runtime acts on, as small typed objects.

Plain classes with ``__slots__`` rather than dataclasses: ``import dataclasses`` costs tens of
milliseconds at start-up (it imports ``inspect`` and ``re``), paid on every ``create``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Mount:
    __slots__ = ("destination", "gid_mappings", "idmap", "options", "source", "type",
                 "uid_mappings")  # fmt: skip

    def __init__(self, destination: str, type: str, source: str, options: list[str]) -> None:
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        # config.md "POSIX-platform Mounts": the mount's own (containerID, hostID, size) maps,
        # and "idmap" / "ridmap" when it is an idmapped mount at all ("" when it is not).
        self.uid_mappings: list[tuple[int, int, int]] = []
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.idmap = ""

    def __repr__(self) -> str:
        return f"Mount({self.destination!r}, {self.type!r}, {self.source!r}, {self.options!r})"


class Rlimit:
    __slots__ = ("hard", "soft", "type")

    def __init__(self, type: str, soft: int, hard: int) -> None:
        self.type = type
        self.soft = soft
        self.hard = hard


class Process:
    __slots__ = (
        "additional_gids",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "gid",
        "io_priority",
        "memory_policy",
        "no_new_privileges",
        "oom_score_adj",
        "personality",
        "rlimits",
        "scheduler",
        "terminal",
        "uid",
        "umask",
        "warnings",
    )  # fmt: skip

    def __init__(self) -> None:
        self.terminal = False
        self.console_size: tuple[int, int] | None = None  # (rows, columns), with a terminal
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.uid = 0
        self.gid = 0
        self.umask: int | None = None
        self.additional_gids: list[int] = []
        # set name ("bounding", ...) → capability names; a set absent from the config is empty
        self.capabilities: dict[str, list[str]] = {}
        self.no_new_privileges = False
        self.rlimits: list[Rlimit] = []
        self.oom_score_adj: int | None = None
        # sched_setattr(2) arguments: policy, flags, nice, priority, runtime, deadline, period
        self.scheduler: tuple[int, int, int, int, int, int, int] | None = None
        self.io_priority: int | None = None  # the ioprio_set(2) value
        self.personality: int | None = None  # linux.personality, applied to every process
        # linux.memoryPolicy as set_mempolicy(2) arguments: mode | flags, nodemask
        self.memory_policy: tuple[int, int] | None = None
        self.warnings: list[str] = []  # what validation tolerated, for the user to read


class Namespace:
    __slots__ = ("path", "type")

    def __init__(self, type: str, path: str | None) -> None:
        self.type = type
        self.path = path


class Device:
    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int,
                 uid: int, gid: int) -> None:  # fmt: skip
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


class Config:
    """A validated config; ``raw`` keeps the document for what is only passed along."""

    __slots__ = (
        "annotations",
        "bundle",
        "cgroups_path",
        "devices",
        "domainname",
        "gid_mappings",
        "hostname",
        "masked_paths",
        "mounts",
        "namespaces",
        "net_devices",
        "oci_version",
        "process",
        "raw",
        "readonly_paths",
        "resources",
        "root_path",
        "root_readonly",
        "rootfs_propagation",
        "seccomp",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )  # fmt: skip

    def __init__(self, raw: dict[str, Any], bundle: str) -> None:
        self.raw = raw
        self.bundle = bundle
        self.oci_version = ""
        self.root_path = ""  # absolute
        self.root_readonly = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.mounts: list[Mount] = []
        self.process: Process | None = None
        self.namespaces: list[Namespace] = []
        self.cgroups_path: str | None = None
        self.resources: dict[str, Any] = {}
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.rootfs_propagation: str | None = None
        self.annotations: dict[str, str] = {}
        self.sysctl: dict[str, str] = {}
        self.devices: list[Device] = []
        # linux.netDevices as (name in the runtime's network namespace, name in the container's)
        self.net_devices: list[tuple[str, str]] = []
        self.time_offsets: dict[str, dict[str, int]] = {}
        self.uid_mappings: list[tuple[int, int, int]] = []  # (containerID, hostID, size)
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.seccomp: dict[str, Any] | None = None  # compiled by linux/seccomp.py at create

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None
