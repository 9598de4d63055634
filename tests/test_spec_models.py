"""The runtime-spec models, the default spec and schema validation (no containers, no root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from bulkhead.spec import (
    CPU,
    DEFAULT_NAMESPACES,
    DEFAULT_PATH_ENV,
    DOCKER_DEFAULT_CAPABILITIES,
    DOCKER_MASKED_PATHS,
    DOCKER_READONLY_PATHS,
    OCI_VERSION,
    RUNC_DEFAULT_CAPABILITIES,
    SCHEMA_DIR_ENV,
    BlockIO,
    Capabilities,
    ConsoleSize,
    Device,
    DeviceCgroup,
    ExecCPUAffinity,
    Hook,
    Hooks,
    HugepageLimit,
    IDMapping,
    IntelRdt,
    IOPriority,
    Linux,
    Memory,
    MemoryPolicy,
    Mount,
    Namespace,
    NetDevice,
    Network,
    Personality,
    Pids,
    Process,
    Rdma,
    Resources,
    Rlimit,
    Root,
    Scheduler,
    SchemaNotFoundError,
    Seccomp,
    Spec,
    State,
    Status,
    Syscall,
    SyscallArg,
    ThrottleDevice,
    TimeOffset,
    User,
    WeightDevice,
    default_spec,
    find_schema_dir,
    validator,
)
from bulkhead.spec.models import InterfacePriority

SCHEMA_DIR = find_schema_dir()
needs_schema = pytest.mark.skipif(
    SCHEMA_DIR is None,
    reason=(
        "runtime-spec schemas not found: set "
        f"{SCHEMA_DIR_ENV}=/path/to/runtime-spec/schema (e.g. ../shared/oci-runtime-spec/schema)"
    ),
)


def schema_errors(doc: Any, schema: str = "config-schema.json") -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(schema).iter_errors(doc)
    ]


def good_examples() -> list[Path]:
    """The runtime-spec's own valid Linux configs (the others carry non-Linux platforms)."""
    if SCHEMA_DIR is None:
        return []
    return sorted(
        p
        for p in (SCHEMA_DIR / "test" / "config" / "good").glob("*.json")
        if not p.name.startswith(("freebsd", "zos"))
    )


# --- default_spec -------------------------------------------------------------------------------


@needs_schema
def test_default_spec_validates_against_the_official_schema() -> None:
    assert schema_errors(default_spec().to_json_dict()) == []


def test_default_spec_is_what_runc_spec_writes_with_docker_paths() -> None:
    doc = default_spec().to_json_dict()
    process, linux = doc["process"], doc["linux"]

    assert doc["ociVersion"] == OCI_VERSION == "1.3.0"
    assert doc["root"] == {"path": "rootfs", "readonly": False}
    assert doc["hostname"] == "bulkhead"
    assert process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["args"] == ["sh"]
    assert process["env"] == [DEFAULT_PATH_ENV]
    assert process["cwd"] == "/"
    assert process["noNewPrivileges"] is True
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
    runc_caps = list(RUNC_DEFAULT_CAPABILITIES)
    assert process["capabilities"] == {
        "bounding": runc_caps,
        "effective": runc_caps,
        "permitted": runc_caps,
    }
    assert [(m["destination"], m["type"]) for m in doc["mounts"]] == [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
    ]
    mounts = {m["destination"]: m for m in doc["mounts"]}
    assert "options" not in mounts["/proc"]
    assert mounts["/dev"]["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert "gid=5" in mounts["/dev/pts"]["options"]
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/sys/fs/cgroup"]["options"] == ["nosuid", "noexec", "nodev", "relatime", "ro"]
    assert linux["namespaces"] == [{"type": t} for t in DEFAULT_NAMESPACES]
    assert linux["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert linux["maskedPaths"] == list(DOCKER_MASKED_PATHS)
    assert linux["readonlyPaths"] == list(DOCKER_READONLY_PATHS)
    assert "cgroupsPath" not in linux


def test_docker_defaults_are_the_documented_lists() -> None:
    # research/security.md §2-3; a change here should be a deliberate one.
    assert "/proc/interrupts" in DOCKER_MASKED_PATHS
    assert "/sys/devices/virtual/powercap" in DOCKER_MASKED_PATHS
    assert not any("thermal_throttle" in p for p in DOCKER_MASKED_PATHS)
    assert len(set(DOCKER_MASKED_PATHS)) == len(DOCKER_MASKED_PATHS) == 12
    assert DOCKER_READONLY_PATHS == (
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    )
    assert set(RUNC_DEFAULT_CAPABILITIES) < set(DOCKER_DEFAULT_CAPABILITIES)
    assert len(DOCKER_DEFAULT_CAPABILITIES) == 14
    assert set(DEFAULT_NAMESPACES) == {"pid", "network", "ipc", "uts", "mount"}


@needs_schema
def test_default_spec_parameters_are_applied() -> None:
    spec = default_spec(
        ["/bin/echo", "hi"],
        rootfs="/tmp/b/rootfs",
        readonly=True,
        hostname="box",
        cgroups_path="/bulkhead/t1",
        env=["A=1"],
        cwd="/tmp",
    )
    doc = spec.to_json_dict()
    assert doc["process"]["args"] == ["/bin/echo", "hi"]
    assert doc["process"]["env"] == ["A=1"]
    assert doc["process"]["cwd"] == "/tmp"
    assert doc["root"] == {"path": "/tmp/b/rootfs", "readonly": True}
    assert doc["hostname"] == "box"
    assert doc["linux"]["cgroupsPath"] == "/bulkhead/t1"
    assert schema_errors(doc) == []


def test_default_spec_returns_independent_objects() -> None:
    first, second = default_spec(), default_spec()
    assert first.linux is not None and first.linux.masked_paths is not None
    first.linux.masked_paths.append("/proc/extra")
    assert first.mounts is not None
    first.mounts.clear()
    assert second.to_json_dict() == default_spec().to_json_dict()


def test_to_json_dict_uses_spec_names_and_leaves_out_unset_fields() -> None:
    doc = default_spec().to_json_dict()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                assert value is not None, key
                assert "_" not in key or key.startswith("RLIMIT"), key
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    assert "domainname" not in doc
    assert "noNewPrivileges" in doc["process"]
    json.dumps(doc)  # plain JSON types only


# --- round trips --------------------------------------------------------------------------------


def test_default_spec_round_trips() -> None:
    spec = default_spec(["sh", "-c", "true"], cgroups_path="/x")
    doc = spec.to_json_dict()
    assert Spec.from_json_dict(doc) == spec
    assert Spec.from_json_dict(doc).to_json_dict() == doc


@needs_schema
@pytest.mark.parametrize("path", good_examples(), ids=lambda p: p.name)
def test_runtime_spec_good_examples_round_trip(path: Path) -> None:
    doc = json.loads(path.read_text())
    if path.name == "spec-example.json":
        # A field from a pre-1.0 draft that the example still carries; the schema ignores it
        # (no additionalProperties) but the spec no longer defines it, so the model refuses it.
        del doc["linux"]["resources"]["oomScoreAdj"]
    assert schema_errors(doc) == []
    assert Spec.from_json_dict(doc).to_json_dict() == doc


def every_field_spec() -> Spec:
    """A spec that sets the fields the runtime-spec's own examples leave out."""
    return Spec(
        process=Process(
            cwd="/",
            console_size=ConsoleSize(height=24, width=80),
            user=User(uid=1, gid=2, umask=0o22, additional_gids=[3]),
            oom_score_adj=100,
            io_priority=IOPriority(class_="IOPRIO_CLASS_BE", priority=4),
            scheduler=Scheduler(
                policy="SCHED_DEADLINE",
                nice=0,
                priority=0,
                flags=["SCHED_FLAG_RESET_ON_FORK"],
                runtime=1000,
                deadline=2000,
                period=3000,
            ),
            exec_cpu_affinity=ExecCPUAffinity(initial="0-1, 3", final="0"),
            capabilities=Capabilities(ambient=["CAP_KILL"], inheritable=["CAP_KILL"]),
            rlimits=[Rlimit(type="RLIMIT_CORE", soft=0, hard=0)],
        ),
        root=Root(path="rootfs"),
        domainname="example.org",
        mounts=[
            Mount(
                destination="/data",
                source="/srv/data",
                type="bind",
                options=["rbind", "idmap"],
                uid_mappings=[IDMapping(container_id=0, host_id=100000, size=65536)],
                gid_mappings=[IDMapping(container_id=0, host_id=100000, size=65536)],
            )
        ],
        hooks=Hooks(poststop=[Hook(path="/bin/true", timeout=5)]),
        linux=Linux(
            namespaces=[Namespace(type="time"), Namespace(type="network", path="/run/n")],
            time_offsets={"monotonic": TimeOffset(secs=10, nanosecs=5)},
            devices=[Device(type="c", path="/dev/fuse", major=10, minor=229, file_mode=0o666)],
            net_devices={"eth1": NetDevice(name="ctr1")},
            resources=Resources(
                devices=[DeviceCgroup(allow=True, type="c", major=1, minor=3, access="rw")],
                memory=Memory(limit=1 << 30, kernel_tcp=0, disable_oom_killer=False),
                cpu=CPU(shares=1024, idle=0, cpus="0"),
                pids=Pids(limit=100),
                block_io=BlockIO(
                    weight=10,
                    weight_device=[WeightDevice(major=8, minor=0, weight=500)],
                    throttle_read_iops_device=[ThrottleDevice(major=8, minor=0, rate=10)],
                ),
                hugepage_limits=[HugepageLimit(page_size="2MB", limit=0)],
                network=Network(
                    class_id=1, priorities=[InterfacePriority(name="eth0", priority=1)]
                ),
                rdma={"mlx5_1": Rdma(hca_handles=3, hca_objects=10000)},
                unified={"memory.high": "max"},
            ),
            seccomp=Seccomp(
                default_action="SCMP_ACT_ERRNO",
                default_errno_ret=1,
                flags=["SECCOMP_FILTER_FLAG_LOG"],
                listener_path="/run/seccomp.sock",
                listener_metadata="meta",
                syscalls=[
                    Syscall(
                        names=["personality"],
                        action="SCMP_ACT_ALLOW",
                        errno_ret=0,
                        args=[SyscallArg(index=0, value=0, value_two=0, op="SCMP_CMP_EQ")],
                    )
                ],
            ),
            intel_rdt=IntelRdt(
                clos_id="c1",
                schemata=["L3:0=ff"],
                l3_cache_schema="L3:0=ff",
                mem_bw_schema="MB:0=50",
                enable_monitoring=True,
            ),
            memory_policy=MemoryPolicy(mode="MPOL_BIND", nodes="0", flags=["MPOL_F_STATIC_NODES"]),
            personality=Personality(domain="LINUX32", flags=[]),
            rootfs_propagation="slave",
        ),
    )


@needs_schema
def test_every_field_round_trips_and_validates() -> None:
    spec = every_field_spec()
    doc = spec.to_json_dict()
    assert schema_errors(doc) == []
    assert doc["process"]["ioPriority"]["class"] == "IOPRIO_CLASS_BE"
    assert doc["process"]["execCPUAffinity"] == {"initial": "0-1, 3", "final": "0"}
    assert doc["mounts"][0]["uidMappings"][0] == {"containerID": 0, "hostID": 100000, "size": 65536}
    resources = doc["linux"]["resources"]
    assert resources["memory"]["kernelTCP"] == 0
    assert resources["memory"]["disableOOMKiller"] is False
    assert "throttleReadIOPSDevice" in resources["blockIO"]
    assert resources["network"]["classID"] == 1
    assert doc["linux"]["intelRdt"]["closID"] == "c1"
    assert Spec.from_json_dict(doc) == spec


def test_fields_accept_python_and_json_names() -> None:
    by_name = Process(cwd="/", no_new_privileges=True, exec_cpu_affinity=ExecCPUAffinity())
    by_alias = Process.model_validate({"cwd": "/", "noNewPrivileges": True, "execCPUAffinity": {}})
    assert by_name == by_alias


# --- what the models refuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"ociVersion": "1.3.0", "bogus": 1},
        {"ociVersion": "1.3.0", "windows": {}},
        {"process": {"cwd": "/", "commandLine": "x"}},
        {"linux": {"resources": {"memory": {"limit": 1, "kmem": 2}}}},
        {"linux": {"cgroups_path": "/x"}},  # snake_case is the Python name, not the JSON one
    ],
    ids=["top", "other-platform", "nested", "deep", "python-name-in-json"],
)
def test_unknown_fields_are_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Spec.from_json_dict(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"process": {"args": ["sh"]}},  # cwd is required
        {"root": {"readonly": True}},  # path is required
        {"mounts": [{"source": "/x"}]},  # destination is required
        {"linux": {"namespaces": [{"type": "net"}]}},  # the type is "network"
        {"linux": {"uidMappings": [{"containerID": -1, "hostID": 0, "size": 1}]}},  # uint32
        {"process": {"cwd": "/", "rlimits": [{"type": "NOFILE", "soft": 1, "hard": 1}]}},
        {"linux": {"devices": [{"type": "x", "path": "/dev/x"}]}},
        {"linux": {"resources": {"hugepageLimits": [{"pageSize": "2mb", "limit": 1}]}}},
    ],
)
def test_values_the_schema_forbids_are_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Spec.from_json_dict(doc)


@needs_schema
def test_runtime_spec_bad_linux_examples_are_rejected_by_the_schema() -> None:
    assert SCHEMA_DIR is not None
    bad = sorted((SCHEMA_DIR / "test" / "config" / "bad").glob("linux-*.json"))
    assert bad
    for path in bad:
        doc = json.loads(path.read_text())
        assert schema_errors(doc), path.name
        with pytest.raises(ValidationError):
            Spec.from_json_dict(doc)


# --- the models follow the schema's property names ----------------------------------------------

# Model -> where its object lives in the schema, and schema properties it deliberately lacks.
SCHEMA_LOCATIONS: list[tuple[type[BaseModel], str, set[str]]] = [
    (Spec, "config-schema.json#", {"solaris", "windows", "vm", "zos", "freebsd"}),
    (Process, "config-schema.json#/properties/process", {"commandLine"}),  # Windows only
    (ConsoleSize, "config-schema.json#/properties/process/properties/consoleSize", set()),
    (User, "config-schema.json#/properties/process/properties/user", {"username"}),  # Windows
    (Capabilities, "config-schema.json#/properties/process/properties/capabilities", set()),
    (Rlimit, "config-schema.json#/properties/process/properties/rlimits/items", set()),
    (IOPriority, "config-schema.json#/properties/process/properties/ioPriority", set()),
    (Scheduler, "config-schema.json#/properties/process/properties/scheduler", set()),
    (ExecCPUAffinity, "config-schema.json#/properties/process/properties/execCPUAffinity", set()),
    (Root, "config-schema.json#/properties/root", set()),
    (Hooks, "config-schema.json#/properties/hooks", set()),
    (Hook, "defs.json#/definitions/Hook", set()),
    (Mount, "defs.json#/definitions/Mount", set()),
    (IDMapping, "defs.json#/definitions/IDMapping", set()),
    (Linux, "config-linux.json#/linux", set()),
    (Resources, "config-linux.json#/linux/properties/resources", set()),
    (Memory, "config-linux.json#/linux/properties/resources/properties/memory", set()),
    (CPU, "config-linux.json#/linux/properties/resources/properties/cpu", set()),
    (Pids, "config-linux.json#/linux/properties/resources/properties/pids", set()),
    (BlockIO, "config-linux.json#/linux/properties/resources/properties/blockIO", set()),
    (Network, "config-linux.json#/linux/properties/resources/properties/network", set()),
    (
        HugepageLimit,
        "config-linux.json#/linux/properties/resources/properties/hugepageLimits/items",
        set(),
    ),
    (Rdma, "defs-linux.json#/definitions/Rdma", set()),
    (DeviceCgroup, "defs-linux.json#/definitions/DeviceCgroup", set()),
    (WeightDevice, "defs-linux.json#/definitions/blockIODeviceWeight", set()),
    (ThrottleDevice, "defs-linux.json#/definitions/blockIODeviceThrottle", set()),
    (InterfacePriority, "defs-linux.json#/definitions/NetworkInterfacePriority", set()),
    (Namespace, "defs-linux.json#/definitions/NamespaceReference", set()),
    (Device, "defs-linux.json#/definitions/Device", set()),
    (NetDevice, "defs-linux.json#/definitions/NetDevice", set()),
    (TimeOffset, "defs-linux.json#/definitions/TimeOffsets", set()),
    (Seccomp, "config-linux.json#/linux/properties/seccomp", set()),
    (Syscall, "defs-linux.json#/definitions/Syscall", set()),
    (SyscallArg, "defs-linux.json#/definitions/SyscallArg", set()),
    (IntelRdt, "config-linux.json#/linux/properties/intelRdt", set()),
    (MemoryPolicy, "config-linux.json#/linux/properties/memoryPolicy", set()),
    (Personality, "defs-linux.json#/definitions/Personality", set()),
]


def schema_object(location: str) -> tuple[set[str], set[str]]:
    """(property names, required names) of the schema object at `location`, following
    `$ref` and `allOf` the way the spec's schemas use them."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    assert SCHEMA_DIR is not None
    registry: Registry[Any] = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), DRAFT4))
        for p in SCHEMA_DIR.glob("*.json")
    )
    properties: set[str] = set()
    required: set[str] = set()
    pending = [registry.resolver().lookup(location)]
    while pending:
        resolved = pending.pop()
        node = resolved.contents
        properties |= set(node.get("properties", {}))
        required |= set(node.get("required", []))
        refs = [node["$ref"]] if "$ref" in node else []
        refs += [part["$ref"] for part in node.get("allOf", []) if "$ref" in part]
        pending += [resolved.resolver.lookup(ref) for ref in refs]
        properties |= {k for part in node.get("allOf", []) for k in part.get("properties", {})}
    return properties, required


@needs_schema
@pytest.mark.parametrize(
    ("model", "location", "not_modelled"),
    SCHEMA_LOCATIONS,
    ids=[model.__name__ for model, _, _ in SCHEMA_LOCATIONS],
)
def test_model_fields_match_schema_properties(
    model: type[BaseModel], location: str, not_modelled: set[str]
) -> None:
    properties, schema_required = schema_object(location)
    fields = model.model_fields
    aliases = {field.alias or name for name, field in fields.items()}
    assert aliases == properties - not_modelled

    required = {field.alias or name for name, field in fields.items() if field.is_required()}
    # Fields with a non-None default are always written, so they satisfy "required" too.
    always_written = {
        field.alias or name for name, field in fields.items() if field.default is not None
    }
    assert required <= schema_required
    assert schema_required <= required | always_written


# --- schema lookup ------------------------------------------------------------------------------


def test_find_schema_dir_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(tmp_path))
    assert find_schema_dir() == tmp_path


def test_validator_names_the_directory_when_schemas_are_missing(tmp_path: Path) -> None:
    with pytest.raises(SchemaNotFoundError, match=str(tmp_path)):
        validator("config-schema.json", tmp_path)
    with pytest.raises(SchemaNotFoundError, match="does not exist"):
        validator("config-schema.json", tmp_path / "nowhere")


@needs_schema
def test_validator_is_cached_and_resolves_refs_across_files() -> None:
    assert validator("config-schema.json") is validator("config-schema.json", SCHEMA_DIR)
    # NamespaceType lives in defs-linux.json, reached through config-linux.json.
    doc = {"ociVersion": "1.3.0", "linux": {"namespaces": [{"type": "net"}]}}
    assert any("net" in error for error in schema_errors(doc))
    assert schema_errors({"hostname": "x"}) == [": 'ociVersion' is a required property"]


# --- state --------------------------------------------------------------------------------------


RUNC_STATE = {
    "ociVersion": "1.2.0",
    "id": "bulkhead-gw0-1",
    "pid": 4242,
    "status": "running",
    "bundle": "/tmp/bundles/b1",
    "rootfs": "/tmp/bundles/b1/rootfs",
    "created": "2025-01-02T03:04:05.123456789Z",
    "owner": "",
}


@needs_schema
def test_state_accepts_runc_output_and_keeps_extra_properties() -> None:
    assert schema_errors(RUNC_STATE, "state-schema.json") == []
    state = State.model_validate(RUNC_STATE)
    assert state.oci_version == "1.2.0"
    assert state.pid == 4242
    assert Status(state.status) is Status.RUNNING
    assert state.model_extra == {
        "rootfs": "/tmp/bundles/b1/rootfs",
        "created": "2025-01-02T03:04:05.123456789Z",
        "owner": "",
    }
    assert state.model_dump(by_alias=True, exclude_none=True) == RUNC_STATE


@needs_schema
def test_state_schema_good_example_parses() -> None:
    assert SCHEMA_DIR is not None
    doc = json.loads((SCHEMA_DIR / "test" / "state" / "good" / "spec-example.json").read_text())
    assert schema_errors(doc, "state-schema.json") == []
    assert State.model_validate(doc).annotations == {"myKey": "myValue"}


def test_state_tolerates_runtime_specific_status_and_missing_pid() -> None:
    paused = State.model_validate({**RUNC_STATE, "status": "paused"})
    assert Status(paused.status) is Status.PAUSED
    stopped = State.model_validate({**RUNC_STATE, "status": "stopped", "pid": 0})
    assert stopped.pid == 0
    creating = State.model_validate(
        {k: v for k, v in RUNC_STATE.items() if k != "pid"} | {"status": "creating"}
    )
    assert creating.pid is None


@pytest.mark.parametrize("missing", ["ociVersion", "id", "status", "bundle"])
def test_state_requires_the_spec_fields(missing: str) -> None:
    with pytest.raises(ValidationError):
        State.model_validate({k: v for k, v in RUNC_STATE.items() if k != missing})


def test_status_values() -> None:
    assert [s.value for s in Status] == ["creating", "created", "running", "stopped", "paused"]
