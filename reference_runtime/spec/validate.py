"""config.json → Config, refusing whatever breaks the runtime-spec (config.md, config-linux.md).

Runs before anything touches the kernel (runtime.md, create: "MUST generate an error" on an
invalid config, and the create must then have no side effect). Every refusal is a SpecError
with a one-line reason naming the field and the value.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError
from reference_runtime.linux.capabilities import CAPABILITIES, SETS
from reference_runtime.linux.constants import (
    IOPRIO_CLASS_SHIFT,
    IOPRIO_CLASSES,
    MPOL_FLAGS,
    MPOL_MAX_NODES,
    MPOL_MODES,
    NAMESPACES,
    PERSONALITIES,
    SCHED_FLAGS,
    SCHED_POLICIES,
)
from reference_runtime.linux.rlimits import RLIMITS
from reference_runtime.spec.model import Config, Device, Mount, Namespace, Process, Rlimit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                "runbindable")  # fmt: skip
DEVICE_TYPES = ("c", "b", "u", "p")
# Namespace types this runtime can create or join.
SUPPORTED_NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be an object, not {_kind(value)}")
    return value


_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), "a value")


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string, not {_kind(value)}")
    return value


def _int(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be an integer, not {_kind(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SpecError(f"{what} {value} is out of range")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be a boolean, not {_kind(value)}")
    return value


def _strs(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise SpecError(f"{what} must be an array, not {_kind(value)}")
    return [_str(v, f"{what}[{i}]") for i, v in enumerate(value)]


def _abs_path(value: Any, what: str) -> str:
    path = _str(value, what)
    if not path.startswith("/"):
        raise SpecError(f"{what} {path!r} must be an absolute path")
    return path


def oci_version(value: Any) -> str:
    version = _str(value, "ociVersion")
    major = version.split(".", 1)[0]
    if not major.isdigit():
        raise SpecError(f"ociVersion {version!r} is not a version (MAJOR.MINOR.PATCH)")
    if major != "1":
        raise SpecError(f"ociVersion {version}: only runtime-spec major version 1 is supported")
    return version


def parse_process(raw: dict[str, Any]) -> Process:
    p = Process()
    p.terminal = _bool(raw.get("terminal", False), "process.terminal")
    if raw.get("consoleSize") is not None:
        size = _obj(raw["consoleSize"], "process.consoleSize")
        # struct winsize holds unsigned shorts (TIOCSWINSZ, ioctl_tty(2)): a larger size cannot
        # be applied, which create must report (runtime.md). Ignored without a terminal.
        p.console_size = (
            _int(size.get("height"), "process.consoleSize.height", 0, 0xFFFF),
            _int(size.get("width"), "process.consoleSize.width", 0, 0xFFFF),
        )
    if "args" not in raw:
        raise SpecError("process.args is required")
    p.args = _strs(raw["args"], "process.args")
    if not p.args:
        raise SpecError("process.args must name the program to run")
    p.env = _strs(raw.get("env", []), "process.env")
    p.cwd = _abs_path(raw.get("cwd", "/"), "process.cwd")
    user = _obj(raw.get("user", {}), "process.user")
    p.uid = _int(user.get("uid", 0), "process.user.uid", 0, 2**32 - 1)
    p.gid = _int(user.get("gid", 0), "process.user.gid", 0, 2**32 - 1)
    if "umask" in user:
        p.umask = _int(user["umask"], "process.user.umask", 0, 0o7777)
    gids = user.get("additionalGids", [])
    if not isinstance(gids, list):
        raise SpecError("process.user.additionalGids must be an array")
    p.additional_gids = [_int(g, "process.user.additionalGids[]", 0, 2**32 - 1) for g in gids]
    caps = _obj(raw.get("capabilities", {}), "process.capabilities")
    for name, names in caps.items():
        if name not in SETS:
            raise SpecError(f"process.capabilities.{name} is not a capability set")
        listed = _strs(names, f"process.capabilities.{name}")
        for cap in listed:
            if cap not in CAPABILITIES:
                # config.md "Linux Process": a name that maps to no kernel capability is
                # logged as a warning, and the operation goes on (runtime.md "Warnings").
                p.warnings.append(f"process.capabilities.{name}: unknown capability {cap}, "
                                  "ignored")  # fmt: skip
        p.capabilities[name] = [cap for cap in listed if cap in CAPABILITIES]
    p.no_new_privileges = _bool(raw.get("noNewPrivileges", False), "process.noNewPrivileges")
    seen: set[str] = set()
    rlimits = raw.get("rlimits", [])
    if not isinstance(rlimits, list):
        raise SpecError("process.rlimits must be an array")
    for item in rlimits:
        r = _obj(item, "process.rlimits[]")
        kind = _str(r.get("type"), "process.rlimits[].type")
        if kind not in RLIMITS:
            raise SpecError(f"process.rlimits: unknown rlimit {kind}")
        if kind in seen:
            raise SpecError(f"process.rlimits: {kind} is listed twice")  # config.md: MUST error
        seen.add(kind)
        soft = _int(r.get("soft"), f"process.rlimits {kind} soft", 0, 2**64 - 1)
        hard = _int(r.get("hard"), f"process.rlimits {kind} hard", 0, 2**64 - 1)
        p.rlimits.append(Rlimit(kind, soft, hard))
    if "oomScoreAdj" in raw:
        p.oom_score_adj = _int(raw["oomScoreAdj"], "process.oomScoreAdj", -1000, 1000)
    if raw.get("scheduler") is not None:
        p.scheduler = _scheduler(_obj(raw["scheduler"], "process.scheduler"))
    if raw.get("ioPriority") is not None:
        io = _obj(raw["ioPriority"], "process.ioPriority")
        cls = _str(io.get("class"), "process.ioPriority.class")
        if cls not in IOPRIO_CLASSES:
            raise SpecError(f"process.ioPriority: unknown class {cls!r}")
        prio = _int(io.get("priority", 0), "process.ioPriority.priority", 0, 7)
        p.io_priority = (IOPRIO_CLASSES[cls] << IOPRIO_CLASS_SHIFT) | prio
    if raw.get("execCPUAffinity"):
        raise SpecError("process.execCPUAffinity: not supported by this runtime yet")
    for field in ("apparmorProfile", "selinuxLabel"):
        if raw.get(field):
            raise SpecError(f"process.{field}: not supported by this runtime")
    return p


def _scheduler(s: dict[str, Any]) -> tuple[int, int, int, int, int, int, int]:
    policy = _str(s.get("policy"), "process.scheduler.policy")
    if policy not in SCHED_POLICIES:
        raise SpecError(f"process.scheduler: unknown policy {policy!r}")
    flags = 0
    for flag in _strs(s.get("flags", []), "process.scheduler.flags"):
        if flag not in SCHED_FLAGS:
            raise SpecError(f"process.scheduler: unknown flag {flag!r}")
        flags |= SCHED_FLAGS[flag]
    # config.md: unset numbers mean 0.
    nice = _int(s.get("nice", 0), "process.scheduler.nice", -20, 19)
    prio = _int(s.get("priority", 0), "process.scheduler.priority", 0, 99)
    times = [_int(s.get(k, 0), f"process.scheduler.{k}", 0, 2**64 - 1)
             for k in ("runtime", "deadline", "period")]  # fmt: skip
    return (SCHED_POLICIES[policy], flags, nice, prio, times[0], times[1], times[2])


def _mount(raw: Any, index: int) -> Mount:
    m = _obj(raw, f"mounts[{index}]")
    if "destination" not in m:
        raise SpecError(f"mounts[{index}].destination is required")
    dest = _str(m["destination"], f"mounts[{index}].destination")
    if not dest:
        raise SpecError(f"mounts[{index}].destination must not be empty")
    # config.md "Mounts": a relative destination (deprecated) is relative to the container's /.
    dest = "/" + dest.lstrip("/")
    kind = _str(m.get("type", ""), f"mounts[{index}].type")
    source = _str(m.get("source", ""), f"mounts[{index}].source")
    options = _strs(m.get("options", []), f"mounts[{index}].options")
    mount = Mount(os.path.normpath(dest), kind, source, options)
    if m.get("uidMappings") or m.get("gidMappings") or "idmap" in options or "ridmap" in options:
        from reference_runtime.rootfs.idmap import check_mount

        uids = _mappings(m.get("uidMappings") or [], f"mounts[{index}].uidMappings")
        gids = _mappings(m.get("gidMappings") or [], f"mounts[{index}].gidMappings")
        bind = kind == "bind" or "bind" in options or "rbind" in options
        check_mount(mount, index, uids, gids, bind)
    return mount


def _namespaces(raw: Any, ns_type_of: Callable[[str], int | None]) -> list[Namespace]:
    if not isinstance(raw, list):
        raise SpecError("linux.namespaces must be an array")
    found: list[Namespace] = []
    for i, item in enumerate(raw):
        ns = _obj(item, f"linux.namespaces[{i}]")
        kind = _str(ns.get("type"), f"linux.namespaces[{i}].type")
        if kind not in NAMESPACES:
            raise SpecError(f"linux.namespaces: unknown namespace type {kind!r}")
        if kind not in SUPPORTED_NAMESPACES:
            raise SpecError(f"linux.namespaces: {kind} namespaces are not supported yet")
        if any(n.type == kind for n in found):
            # config-linux.md: "duplicated namespaces ... MUST generate an error"
            raise SpecError(f"linux.namespaces: the {kind} namespace is listed twice")
        path = ns.get("path")
        if path is not None:
            path = _abs_path(path, f"linux.namespaces {kind} path")
            actual = ns_type_of(path)
            if actual is None:
                raise SpecError(f"linux.namespaces {kind} path {path} is not a namespace")
            if actual != NAMESPACES[kind][0]:
                raise SpecError(f"linux.namespaces {kind} path {path} is another type of namespace")
        found.append(Namespace(kind, path))
    return found


def _seccomp(s: dict[str, Any]) -> None:
    """The shape of linux.seccomp; names, actions and architectures are checked when the
    filter is compiled (linux/seccomp.py), still before anything is made."""
    _str(s.get("defaultAction"), "linux.seccomp.defaultAction")
    if "defaultErrnoRet" in s:
        _int(s["defaultErrnoRet"], "linux.seccomp.defaultErrnoRet", 0, 2**32 - 1)
    _strs(s.get("architectures", []), "linux.seccomp.architectures")
    _strs(s.get("flags", []), "linux.seccomp.flags")
    rules = s.get("syscalls", [])
    if not isinstance(rules, list):
        raise SpecError("linux.seccomp.syscalls must be an array")
    for i, item in enumerate(rules):
        rule = _obj(item, f"linux.seccomp.syscalls[{i}]")
        if not _strs(rule.get("names"), f"linux.seccomp.syscalls[{i}].names"):
            raise SpecError(f"linux.seccomp.syscalls[{i}].names must not be empty")
        _str(rule.get("action"), f"linux.seccomp.syscalls[{i}].action")
        if "errnoRet" in rule:
            _int(rule["errnoRet"], f"linux.seccomp.syscalls[{i}].errnoRet", 0, 2**32 - 1)
        args = rule.get("args", [])
        if not isinstance(args, list):
            raise SpecError(f"linux.seccomp.syscalls[{i}].args must be an array")
        for j, raw_arg in enumerate(args):
            arg = _obj(raw_arg, f"linux.seccomp.syscalls[{i}].args[{j}]")
            _int(arg.get("index"), f"linux.seccomp.syscalls[{i}].args[{j}].index", 0, 5)
            _int(arg.get("value"), f"linux.seccomp.syscalls[{i}].args[{j}].value", 0, 2**64 - 1)
            if "valueTwo" in arg:
                _int(arg["valueTwo"], f"linux.seccomp.syscalls[{i}].args[{j}].valueTwo", 0,
                     2**64 - 1)  # fmt: skip
            _str(arg.get("op"), f"linux.seccomp.syscalls[{i}].args[{j}].op")


def _mappings(raw: Any, what: str) -> list[tuple[int, int, int]]:
    if not isinstance(raw, list):
        raise SpecError(f"{what} must be an array")
    out = []
    for i, item in enumerate(raw):
        m = _obj(item, f"{what}[{i}]")
        out.append((_int(m.get("containerID"), f"{what}[{i}].containerID", 0, 2**32 - 1),
                    _int(m.get("hostID"), f"{what}[{i}].hostID", 0, 2**32 - 1),
                    _int(m.get("size"), f"{what}[{i}].size", 1, 2**32 - 1)))  # fmt: skip
    return out


def _devices(raw: Any) -> list[Device]:
    if not isinstance(raw, list):
        raise SpecError("linux.devices must be an array")
    out = []
    for i, item in enumerate(raw):
        d = _obj(item, f"linux.devices[{i}]")
        path = os.path.normpath(_abs_path(d.get("path"), f"linux.devices[{i}].path"))
        if not path.startswith("/dev/"):
            raise SpecError(f"linux.devices: {path} is outside /dev")
        kind = _str(d.get("type"), f"linux.devices {path} type")
        if kind not in DEVICE_TYPES:
            raise SpecError(f"linux.devices {path}: unknown device type {kind!r}")
        major = minor = 0
        if kind != "p":
            major = _int(d.get("major"), f"linux.devices {path} major", 0)
            minor = _int(d.get("minor"), f"linux.devices {path} minor", 0)
        mode = _int(d.get("fileMode", 0o666), f"linux.devices {path} fileMode", 0, 0o7777)
        uid = _int(d.get("uid", 0), f"linux.devices {path} uid", 0)
        gid = _int(d.get("gid", 0), f"linux.devices {path} gid", 0)
        out.append(Device(path, kind, major, minor, mode, uid, gid))
    return out


def _ifname(value: Any, what: str, *, template: bool = False) -> str:
    """A network device name as the kernel takes it (dev_valid_name in net/core/dev.c: 1 to 15
    bytes, not "." or "..", no "/", ":" or white space); a template has one "%d"."""
    name = _str(value, what)
    if (
        not 0 < len(name.encode()) < 16
        or name in (".", "..")
        or any(ch in name for ch in "/: \t\n\r\v\f")
        or name.count("%") > (1 if template else 0)
        or ("%" in name and "%d" not in name)
    ):
        raise SpecError(f"{what} {name!r} is not a network device name")
    return name


def _net_devices(raw: Any, kinds: set[str]) -> list[tuple[str, str]]:
    """config-linux.md "Network Devices": runtime-namespace name -> optional new name."""
    devices = _obj(raw, "linux.netDevices")
    if devices and "network" not in kinds:
        # Without a network namespace of its own the devices would stay where they are.
        raise SpecError("linux.netDevices: needs a network namespace in linux.namespaces")
    out = []
    for key, entry in devices.items():
        host = _ifname(key, "linux.netDevices: the key")
        fields = _obj(entry, f"linux.netDevices[{host!r}]")
        name = host
        if fields.get("name") is not None:
            name = _ifname(fields["name"], f"linux.netDevices[{host!r}].name", template=True)
        out.append((host, name))
    fixed = [name for _, name in out if "%" not in name]
    if len(fixed) != len(set(fixed)):
        raise SpecError("linux.netDevices: two devices are given the same name")
    return out


def _hooks(raw: Any, is_executable: Callable[[str], bool]) -> None:
    """config.md "POSIX-platform Hooks": checked here, run by process/hooks.py."""
    from reference_runtime.process.hooks import KINDS, PATH_IN_CONTAINER

    hooks = _obj(raw, "hooks")
    for kind, entries in hooks.items():
        if kind not in KINDS:
            raise SpecError(f"hooks.{kind} is not a hook kind")
        if not isinstance(entries, list):
            raise SpecError(f"hooks.{kind} must be an array")
        for i, entry in enumerate(entries):
            hook = _obj(entry, f"hooks.{kind}[{i}]")
            path = _abs_path(hook.get("path"), f"hooks.{kind}[{i}].path")
            _strs(hook.get("args", []), f"hooks.{kind}[{i}].args")
            _strs(hook.get("env", []), f"hooks.{kind}[{i}].env")
            if "timeout" in hook:
                _int(hook["timeout"], f"hooks.{kind}[{i}].timeout", 1)
            if kind not in PATH_IN_CONTAINER and not is_executable(path):
                raise SpecError(f"hooks.{kind}[{i}].path {path} is not an executable file")


def _always(path: str) -> bool:
    return True


def validate(
    raw: Any,
    bundle: str,
    *,
    ns_type_of: Callable[[str], int | None],
    isdir: Callable[[str], bool],
    is_executable: Callable[[str], bool] = _always,
) -> Config:
    """The checked, normalised config of ``bundle`` (an absolute directory)."""
    doc = _obj(raw, "config.json")
    cfg = Config(doc, bundle)
    if "ociVersion" not in doc:
        raise SpecError("ociVersion is required")
    cfg.oci_version = oci_version(doc["ociVersion"])
    if "root" not in doc:
        raise SpecError("root is required")
    root = _obj(doc["root"], "root")
    path = _str(root.get("path"), "root.path")
    cfg.root_path = os.path.normpath(os.path.join(bundle, path))
    if not isdir(cfg.root_path):
        raise SpecError(f"root.path {cfg.root_path}: no such directory")
    cfg.root_readonly = _bool(root.get("readonly", False), "root.readonly")
    if doc.get("process") is not None:
        cfg.process = parse_process(_obj(doc["process"], "process"))
    if "hostname" in doc:
        cfg.hostname = _str(doc["hostname"], "hostname")
    if "domainname" in doc:
        cfg.domainname = _str(doc["domainname"], "domainname")
    mounts = doc.get("mounts", [])
    if not isinstance(mounts, list):
        raise SpecError("mounts must be an array")
    cfg.mounts = [_mount(m, i) for i, m in enumerate(mounts)]
    annotations = _obj(doc.get("annotations", {}), "annotations")
    for key, value in annotations.items():
        _str(value, f"annotations[{key!r}]")
    cfg.annotations = annotations
    _hooks(doc.get("hooks") or {}, is_executable)
    linux = _obj(doc.get("linux", {}), "linux")
    cfg.namespaces = _namespaces(linux.get("namespaces", []), ns_type_of)
    kinds = {ns.type for ns in cfg.namespaces}
    for field in ("hostname", "domainname"):
        if getattr(cfg, field) and "uts" not in kinds:
            # Without a UTS namespace of its own, setting it would rename the host.
            raise SpecError(f"{field}: setting it needs a uts namespace of the container's own")
    if "mount" not in kinds:
        raise SpecError(
            "linux.namespaces: a mount namespace is required (the rootfs and its mounts would "
            "otherwise be built in the runtime's own mount namespace)"
        )
    if "cgroupsPath" in linux:
        cfg.cgroups_path = _str(linux["cgroupsPath"], "linux.cgroupsPath")
    cfg.resources = _obj(linux.get("resources", {}) or {}, "linux.resources")
    cfg.masked_paths = [_abs_path(p, "linux.maskedPaths[]") for p in
                        _strs(linux.get("maskedPaths", []), "linux.maskedPaths")]  # fmt: skip
    cfg.readonly_paths = [_abs_path(p, "linux.readonlyPaths[]") for p in
                          _strs(linux.get("readonlyPaths", []), "linux.readonlyPaths")]  # fmt: skip
    if "rootfsPropagation" in linux:
        prop = _str(linux["rootfsPropagation"], "linux.rootfsPropagation")
        if prop not in PROPAGATIONS:
            raise SpecError(f"linux.rootfsPropagation {prop!r} is not a propagation type")
        cfg.rootfs_propagation = prop
    sysctl = _obj(linux.get("sysctl", {}) or {}, "linux.sysctl")
    for key, value in sysctl.items():
        _str(value, f"linux.sysctl[{key!r}]")
        if "/" in key or ".." in key.split("."):
            raise SpecError(f"linux.sysctl: {key!r} is not a sysctl name")
    cfg.sysctl = sysctl
    cfg.devices = _devices(linux.get("devices", []) or [])
    offsets = _obj(linux.get("timeOffsets", {}) or {}, "linux.timeOffsets")
    for clock, value in offsets.items():
        if clock not in ("monotonic", "boottime"):
            raise SpecError(f"linux.timeOffsets: unknown clock {clock!r}")
        entry = _obj(value, f"linux.timeOffsets.{clock}")
        cfg.time_offsets[clock] = {
            "secs": _int(entry.get("secs", 0), f"linux.timeOffsets.{clock}.secs"),
            "nanosecs": _int(entry.get("nanosecs", 0), f"linux.timeOffsets.{clock}.nanosecs", 0),
        }
    if cfg.time_offsets and "time" not in kinds:
        raise SpecError("linux.timeOffsets: needs a time namespace")
    if linux.get("personality") is not None:
        persona = _obj(linux["personality"], "linux.personality")
        domain = _str(persona.get("domain", "LINUX"), "linux.personality.domain")
        if domain not in PERSONALITIES:
            raise SpecError(f"linux.personality: unknown domain {domain!r}")
        if persona.get("flags"):
            raise SpecError("linux.personality.flags: not supported by this runtime yet")
        if cfg.process is not None:
            cfg.process.personality = PERSONALITIES[domain]
    for key in ("network", "rdma"):
        if cfg.resources.get(key):
            raise SpecError(f"linux.resources.{key}: not supported by this runtime yet")
    if linux.get("seccomp") is not None:
        _seccomp(_obj(linux["seccomp"], "linux.seccomp"))
        cfg.seccomp = linux["seccomp"]
    cfg.net_devices = _net_devices(linux.get("netDevices") or {}, kinds)
    if linux.get("intelRdt"):
        # No resctrl support: config-linux.md IntelRdt wants an error then anyway.
        raise SpecError("linux.intelRdt: Intel RDT is not supported by this runtime")
    if linux.get("memoryPolicy") is not None:
        policy = _memory_policy(_obj(linux["memoryPolicy"], "linux.memoryPolicy"))
        if cfg.process is not None:
            cfg.process.memory_policy = policy
    cfg.uid_mappings = _mappings(linux.get("uidMappings", []), "linux.uidMappings")
    cfg.gid_mappings = _mappings(linux.get("gidMappings", []), "linux.gidMappings")
    user = cfg.namespace("user")
    if user is not None and user.path is None and not (cfg.uid_mappings and cfg.gid_mappings):
        # config-linux.md "User namespace mappings": a new user namespace needs them.
        raise SpecError("linux.uidMappings and gidMappings are required for a new user namespace")
    if (cfg.uid_mappings or cfg.gid_mappings) and (user is None or user.path is not None):
        raise SpecError("linux.uidMappings/gidMappings need a new user namespace")
    if any(m.idmap for m in cfg.mounts):
        from reference_runtime.rootfs.idmap import check_userns

        check_userns(cfg)
    if linux.get("mountLabel"):
        raise SpecError("linux.mountLabel: SELinux is not supported by this runtime")
    return cfg


# set_mempolicy(2): these modes take no nodes, these need some; MPOL_PREFERRED without nodes
# means local allocation.
_MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEEDS_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                     "MPOL_PREFERRED_MANY")  # fmt: skip


def _nodes(text: str) -> int:
    """A node list ("0-3,7", as in cpuset(7)) as a mask."""
    mask = 0
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise SpecError(f"linux.memoryPolicy.nodes: {text!r} is not a node list")
        first, last = int(low), int(high or low)
        if first > last or last >= MPOL_MAX_NODES:
            raise SpecError(f"linux.memoryPolicy.nodes: {text!r} is out of range")
        for node in range(first, last + 1):
            mask |= 1 << node
    return mask


def _memory_policy(raw: dict[str, Any]) -> tuple[int, int]:
    """config-linux.md "Memory policy" → (mode | flags, nodemask) for set_mempolicy(2)."""
    mode = _str(raw.get("mode", ""), "linux.memoryPolicy.mode")
    if mode not in MPOL_MODES:
        raise SpecError(f"linux.memoryPolicy.mode: unknown mode {mode!r}")
    nodes = _nodes(raw["nodes"]) if raw.get("nodes") else 0
    if mode in _MPOL_NO_NODES and nodes:
        raise SpecError(f"linux.memoryPolicy: {mode} takes no nodes")
    if mode in _MPOL_NEEDS_NODES and not nodes:
        raise SpecError(f"linux.memoryPolicy: {mode} needs nodes")
    flags = 0
    for flag in _strs(raw.get("flags", []) or [], "linux.memoryPolicy.flags"):
        if flag not in MPOL_FLAGS:
            raise SpecError(f"linux.memoryPolicy.flags: unknown flag {flag!r}")
        flags |= MPOL_FLAGS[flag]
    both = MPOL_FLAGS["MPOL_F_STATIC_NODES"] | MPOL_FLAGS["MPOL_F_RELATIVE_NODES"]
    if flags & both == both:
        raise SpecError("linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and "
                        "MPOL_F_RELATIVE_NODES exclude each other")  # fmt: skip
    return MPOL_MODES[mode] | flags, nodes
