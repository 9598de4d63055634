"""Typed models of the OCI runtime-spec v1.3.0 configuration (Linux) and state.

Python attributes are snake_case; JSON names are the spec's camelCase, produced by an alias
generator, with explicit aliases where the spec's spelling is not plain camelCase
(`containerID`, `kernelTCP`, `blockIO`, ...). Which fields are required mirrors the official
JSON schema (`schema/config-schema.json`, `config-linux.json`, `defs*.json`), and integer ranges
mirror its `int32`/`uint64`/... definitions, so a model that validates here also validates there.
Values the schema accepts but a runtime must refuse (an out-of-range `oomScoreAdj`, a relative
mount destination) are deliberately representable: conformance tests need to write them.

Only the Linux platform is modelled; `windows`, `solaris`, `vm`, `zos` and `freebsd` keys are
rejected like any other unknown field.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

OCI_VERSION = "1.3.0"

# Integer ranges from defs.json (`int32`, `int64`, `uint16`, `uint32`, `uint64`, `FileMode`).
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
UInt16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
FileMode = Annotated[int, Field(ge=0, le=0o777)]  # "in decimal, not octal" (defs.json)

# Enumerations from defs-linux.json.
NamespaceType = Literal["mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"]
RootfsPropagation = Literal["private", "shared", "slave", "unbindable"]
DeviceType = Literal["c", "b", "u", "p"]  # FileType: char, block, unbuffered char, FIFO
SchedulerPolicy = Literal[
    "SCHED_OTHER",
    "SCHED_FIFO",
    "SCHED_RR",
    "SCHED_BATCH",
    "SCHED_ISO",
    "SCHED_IDLE",
    "SCHED_DEADLINE",
]
SchedulerFlag = Literal[
    "SCHED_FLAG_RESET_ON_FORK",
    "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",
    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
]
IOPriorityClass = Literal["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]
SeccompAction = Literal[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
]
SeccompFlag = Literal[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
]
SeccompOperator = Literal[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
]
MemoryPolicyMode = Literal[
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
]
MemoryPolicyFlag = Literal["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
PersonalityDomain = Literal["LINUX", "LINUX32"]


class SpecModel(BaseModel):
    """Base of every config model: camelCase JSON names, unknown fields rejected."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", alias_generator=to_camel)


# --- shared definitions (defs.json) -------------------------------------------------------------


class IDMapping(SpecModel):
    """A uid/gid range mapping (config-linux.md "User namespace mappings", mount idmaps)."""

    container_id: UInt32 = Field(alias="containerID")
    host_id: UInt32 = Field(alias="hostID")
    size: UInt32


class Mount(SpecModel):
    """One entry of `mounts` (config.md "Mounts"); applied in order by the runtime."""

    destination: str
    source: str | None = None
    type: str | None = None
    options: list[str] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None


class Hook(SpecModel):
    """One hook command (config.md "POSIX-platform Hooks")."""

    path: str
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: Annotated[int, Field(ge=1)] | None = None  # seconds; the schema requires >= 1


class Hooks(SpecModel):
    # `prestart` is deprecated (config.md "Prestart") in favour of createRuntime, but still valid.
    prestart: list[Hook] | None = None
    create_runtime: list[Hook] | None = None
    create_container: list[Hook] | None = None
    start_container: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


class Root(SpecModel):
    """config.md "Root": the bundle-relative or absolute rootfs path."""

    path: str
    readonly: bool | None = None


# --- process (config.md "Process") --------------------------------------------------------------


class ConsoleSize(SpecModel):
    height: UInt64
    width: UInt64


class User(SpecModel):
    # config.md lists uid and gid as REQUIRED on POSIX platforms while the schema does not;
    # defaulting them to 0 (what the Go bindings do for a missing value) keeps both readings.
    uid: UInt32 = 0
    gid: UInt32 = 0
    umask: UInt32 | None = None
    additional_gids: list[UInt32] | None = None


class Capabilities(SpecModel):
    """Capability names per set, e.g. "CAP_KILL" (config.md "Linux Process")."""

    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(SpecModel):
    """A POSIX rlimit (config.md "POSIX process"); the schema's type pattern is enforced."""

    type: Annotated[str, Field(pattern=r"^RLIMIT_[A-Z]+$")]
    soft: UInt64
    hard: UInt64


class IOPriority(SpecModel):
    # `class` is a Python keyword, hence the trailing underscore.
    class_: IOPriorityClass = Field(alias="class")
    priority: Int32 | None = None


class Scheduler(SpecModel):
    policy: SchedulerPolicy
    nice: Int32 | None = None
    priority: Int32 | None = None
    flags: list[SchedulerFlag] | None = None
    runtime: UInt64 | None = None
    deadline: UInt64 | None = None
    period: UInt64 | None = None


CPUList = Annotated[str, Field(pattern=r"^[0-9, -]*$")]


class ExecCPUAffinity(SpecModel):
    initial: CPUList | None = None
    final: CPUList | None = None


class Process(SpecModel):
    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User | None = None
    args: list[str] | None = None
    env: list[str] | None = None
    cwd: str  # the only field the schema requires
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    no_new_privileges: bool | None = None
    apparmor_profile: str | None = None
    # Not range-checked: the kernel's [-1000, 1000] bound is for the runtime to enforce.
    oom_score_adj: int | None = None
    selinux_label: str | None = None
    io_priority: IOPriority | None = None
    scheduler: Scheduler | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = Field(default=None, alias="execCPUAffinity")


# --- linux.resources (config-linux.md "Control groups") -----------------------------------------


class DeviceCgroup(SpecModel):
    """A device cgroup allow/deny rule (config-linux.md "Allowed Device list")."""

    allow: bool
    type: str | None = None  # "a", "b" or "c"; left open so tests can write bad values
    major: Int64 | None = None
    minor: Int64 | None = None
    access: str | None = None  # a combination of "r", "w", "m"


class Memory(SpecModel):
    limit: Int64 | None = None
    reservation: Int64 | None = None
    swap: Int64 | None = None
    kernel: Int64 | None = None  # NOT RECOMMENDED by config-linux.md: kernels dropped kmem limits
    kernel_tcp: Int64 | None = Field(default=None, alias="kernelTCP")
    swappiness: UInt64 | None = None
    disable_oom_killer: bool | None = Field(default=None, alias="disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CPU(SpecModel):
    shares: UInt64 | None = None
    quota: Int64 | None = None
    burst: UInt64 | None = None
    period: UInt64 | None = None
    realtime_runtime: Int64 | None = None
    realtime_period: UInt64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: Int64 | None = None


class Pids(SpecModel):
    limit: Int64


class WeightDevice(SpecModel):
    major: Int64
    minor: Int64
    weight: UInt16 | None = None
    leaf_weight: UInt16 | None = None


class ThrottleDevice(SpecModel):
    major: Int64
    minor: Int64
    rate: UInt64 | None = None


class BlockIO(SpecModel):
    weight: UInt16 | None = None
    leaf_weight: UInt16 | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = Field(
        default=None, alias="throttleReadIOPSDevice"
    )
    throttle_write_iops_device: list[ThrottleDevice] | None = Field(
        default=None, alias="throttleWriteIOPSDevice"
    )


class HugepageLimit(SpecModel):
    page_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*[KMG]B$")]
    limit: UInt64


class InterfacePriority(SpecModel):
    name: str
    priority: UInt32


class Network(SpecModel):
    class_id: UInt32 | None = Field(default=None, alias="classID")
    priorities: list[InterfacePriority] | None = None


class Rdma(SpecModel):
    hca_handles: UInt32 | None = None
    hca_objects: UInt32 | None = None


class Resources(SpecModel):
    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = Field(default=None, alias="blockIO")
    hugepage_limits: list[HugepageLimit] | None = None
    network: Network | None = None
    rdma: dict[str, Rdma] | None = None
    unified: dict[str, str] | None = None  # cgroup v2 file name -> value


# --- the rest of `linux` (config-linux.md) ------------------------------------------------------


class Namespace(SpecModel):
    """A namespace to create (no path) or join (path) (config-linux.md "Namespaces")."""

    type: NamespaceType
    path: str | None = None


class Device(SpecModel):
    """A device node to create in the container (config-linux.md "Devices")."""

    type: DeviceType
    path: str
    major: Int64 | None = None
    minor: Int64 | None = None
    file_mode: FileMode | None = None
    uid: UInt32 | None = None
    gid: UInt32 | None = None


class NetDevice(SpecModel):
    """A host network device to move into the container (config-linux.md "Network Devices")."""

    name: str | None = None


class TimeOffset(SpecModel):
    secs: Int64 | None = None
    nanosecs: UInt32 | None = None


class SyscallArg(SpecModel):
    index: UInt32
    value: UInt64
    value_two: UInt64 | None = None
    op: SeccompOperator


class Syscall(SpecModel):
    names: Annotated[list[str], Field(min_length=1)]
    action: SeccompAction
    errno_ret: UInt32 | None = None
    args: list[SyscallArg] | None = None


class Seccomp(SpecModel):
    default_action: SeccompAction
    default_errno_ret: UInt32 | None = None
    # Architecture names stay plain strings: the schema's enum grows with libseccomp.
    architectures: list[str] | None = None
    flags: list[SeccompFlag] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: list[Syscall] | None = None


class IntelRdt(SpecModel):
    clos_id: str | None = Field(default=None, alias="closID")
    schemata: list[str] | None = None
    l3_cache_schema: str | None = None
    mem_bw_schema: Annotated[str, Field(pattern=r"^MB:[^\n]*$")] | None = None
    enable_monitoring: bool | None = None


class MemoryPolicy(SpecModel):
    mode: MemoryPolicyMode | None = None
    nodes: str | None = None
    flags: list[MemoryPolicyFlag] | None = None


class Personality(SpecModel):
    domain: PersonalityDomain | None = None
    flags: list[str] | None = None


class Linux(SpecModel):
    namespaces: list[Namespace] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None
    time_offsets: dict[Literal["boottime", "monotonic"], TimeOffset] | None = None
    devices: list[Device] | None = None
    net_devices: dict[str, NetDevice] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: RootfsPropagation | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    mount_label: str | None = None
    intel_rdt: IntelRdt | None = None
    memory_policy: MemoryPolicy | None = None
    personality: Personality | None = None


# --- the document -------------------------------------------------------------------------------


class Spec(SpecModel):
    """A whole config.json (config.md)."""

    oci_version: str = OCI_VERSION
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The config.json document: spec (camelCase) names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> Self:
        """Parse a config.json document; raises `pydantic.ValidationError` on a bad one.

        Only the spec's JSON names are accepted here: a snake_case key in a config.json is a
        field no runtime reads, so it is reported like any other unknown field.
        """
        return cls.model_validate(d, by_alias=True, by_name=False)


# --- runtime state (runtime.md "State") ---------------------------------------------------------


class Status(StrEnum):
    """Container status values. runtime.md defines the first four; runc and crun add "paused"."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


class State(BaseModel):
    """The JSON printed by `<runtime> state <id>`.

    Extra properties are kept, not rejected: runc and crun add `rootfs`, `created` and `owner`
    (runtime.md allows "additional values" in the state). `status` stays a plain string so an
    unexpected value is reported by the test that cares rather than failing the parse.
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow", alias_generator=to_camel)

    oci_version: str
    id: str
    status: str
    # REQUIRED on Linux while created or running (runtime.md); runc reports 0 once stopped.
    pid: int | None = None
    bundle: str
    annotations: dict[str, str] | None = None
