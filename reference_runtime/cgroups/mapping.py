"""linux.resources → the cgroup files to write, for v1 and for v2. Pure data, no I/O.

v1 files are those of the kernel's cgroup-v1 docs (Documentation/admin-guide/cgroup-v1/); v2
files and the conversions between the two (cpu.shares → cpu.weight, swap → memory.swap.max) are
those of cgroup-v2.rst and of the OCI runtime-spec's "unified" mapping as runc and crun apply it.
"""

from __future__ import annotations

from reference_runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Write:
    """Write ``value`` to ``<controller's directory>/<file>``."""

    __slots__ = ("controller", "file", "value")

    def __init__(self, controller: str, file: str, value: str) -> None:
        self.controller = controller
        self.file = file
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Write) and (self.controller, self.file, self.value) == (
            other.controller, other.file, other.value)  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.controller, self.file, self.value))

    def __repr__(self) -> str:
        return f"Write({self.controller!r}, {self.file!r}, {self.value!r})"

    def describe(self) -> str:
        return f"{self.controller}: {self.file} = {self.value}"


# Devices every container gets on top of its rules (config-linux.md "Default Devices", plus
# the pseudo-terminals and tun, as runc allows them): type, major, minor, access.
DEFAULT_ALLOWED_DEVICES: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 136, None, "rwm"), ("c", 10, 200, "rwm"),
)  # fmt: skip


def _num(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"linux.resources.{what} must be an integer")
    return value


def _device_rule(kind: str, major: int | None, minor: int | None, access: str) -> str:
    ma = "*" if major is None or major < 0 else str(major)
    mi = "*" if minor is None or minor < 0 else str(minor)
    return "a" if kind == "a" else f"{kind} {ma}:{mi} {access}"


def _devices_v1(rules: list[Any]) -> list[Write]:
    writes = []
    for rule in rules:
        allow = bool(rule.get("allow"))
        kind = rule.get("type", "a") or "a"
        access = rule.get("access", "rwm") or "rwm"
        if kind == "a" and rule.get("major") in (None, -1) and rule.get("minor") in (None, -1):
            line = "a"
        else:
            line = _device_rule(kind, rule.get("major"), rule.get("minor"), access)
        writes.append(Write("devices", "devices.allow" if allow else "devices.deny", line))
    for kind, major, minor, access in DEFAULT_ALLOWED_DEVICES:
        writes.append(Write("devices", "devices.allow", _device_rule(kind, major, minor, access)))
    return writes


def device_program(resources: dict[str, Any]) -> bytes | None:
    """The cgroup v2 device program for linux.resources.devices (validated; pure), or None when
    the config has no rules: then, as v1_writes writes no devices file, access stays as the
    parent cgroup allows it. The runtime's default devices follow the rules, as on v1."""
    rules = resources.get("devices") or []
    if not rules:
        return None
    from reference_runtime.cgroups import devices_bpf

    parsed = devices_bpf.parse_rules(rules)
    return devices_bpf.program(devices_bpf.with_defaults(parsed, DEFAULT_ALLOWED_DEVICES))


def _throttle_lines(items: list[Any] | None, key: str) -> list[str]:
    return [f"{d['major']}:{d['minor']} {d[key]}" for d in items or []]


def _pids_writes(resources: dict[str, Any]) -> list[Write]:
    """pids.max, the one file v1 and v2 name and fill alike (a limit <= 0 means no limit)."""
    pids = resources.get("pids") or {}
    if "limit" not in pids:
        return []
    limit = _num(pids["limit"], "pids.limit")
    return [Write("pids", "pids.max", "max" if limit <= 0 else str(limit))]


def v1_writes(resources: dict[str, Any]) -> list[Write]:
    """The v1 files for ``resources``, in the order they must be written."""
    out: list[Write] = []
    out.extend(_pids_writes(resources))
    mem = resources.get("memory") or {}
    if "limit" in mem:
        out.append(
            Write("memory", "memory.limit_in_bytes", str(_num(mem["limit"], "memory.limit")))
        )
    if "reservation" in mem:
        value = str(_num(mem["reservation"], "memory.reservation"))
        out.append(Write("memory", "memory.soft_limit_in_bytes", value))
    if "swap" in mem:
        value = str(_num(mem["swap"], "memory.swap"))
        out.append(Write("memory", "memory.memsw.limit_in_bytes", value))
    if "swappiness" in mem:
        value = str(_num(mem["swappiness"], "memory.swappiness"))
        out.append(Write("memory", "memory.swappiness", value))
    if mem.get("disableOOMKiller"):
        out.append(Write("memory", "memory.oom_control", "1"))
    # Kernels since 6.1 refuse kmem limits (cgroup-v1/memory.rst): the write's error says so.
    for key, file in (("kernel", "memory.kmem.limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):  # fmt: skip
        if key in mem:
            out.append(Write("memory", file, str(_num(mem[key], f"memory.{key}"))))
    if "useHierarchy" in mem:
        out.append(Write("memory", "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0"))
    cpu = resources.get("cpu") or {}
    # Burst after quota: the kernel refuses a burst above the quota in force (sched-bwc.rst).
    for key, file in (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"),
                      ("quota", "cpu.cfs_quota_us"), ("burst", "cpu.cfs_burst_us"),
                      ("realtimePeriod", "cpu.rt_period_us"),
                      ("realtimeRuntime", "cpu.rt_runtime_us"), ("idle", "cpu.idle")):  # fmt: skip
        if key in cpu:
            out.append(Write("cpu", file, str(_num(cpu[key], f"cpu.{key}"))))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        if cpu.get(key):
            out.append(Write("cpuset", file, str(cpu[key])))
    blkio = resources.get("blockIO") or {}
    if "weight" in blkio:
        out.append(Write("blkio", "blkio.weight", str(_num(blkio["weight"], "blockIO.weight"))))
    if "leafWeight" in blkio:
        value = str(_num(blkio["leafWeight"], "blockIO.leafWeight"))
        out.append(Write("blkio", "blkio.leaf_weight", value))
    for d in blkio.get("weightDevice") or []:
        if "weight" in d:
            line = f"{d['major']}:{d['minor']} {_num(d['weight'], 'blockIO.weightDevice.weight')}"
            out.append(Write("blkio", "blkio.weight_device", line))
        if "leafWeight" in d:
            line = f"{d['major']}:{d['minor']} {d['leafWeight']}"
            out.append(Write("blkio", "blkio.leaf_weight_device", line))
    for key, file, field in (
        ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rate"),
        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "rate"),
        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "rate"),
        ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "rate"),
    ):
        out.extend(Write("blkio", file, line) for line in _throttle_lines(blkio.get(key), field))
    for limit in resources.get("hugepageLimits") or []:
        size = limit["pageSize"]
        out.append(Write("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit["limit"])))
    if resources.get("devices"):
        out.extend(_devices_v1(resources["devices"]))
    if resources.get("unified"):
        raise SpecError("linux.resources.unified needs cgroup v2, and this host uses v1")
    return out


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) → cpu.weight (1..10000), the runtime-spec's linear mapping."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


V2_THROTTLE = (
    ("throttleReadBpsDevice", "rbps"),
    ("throttleWriteBpsDevice", "wbps"),
    ("throttleReadIOPSDevice", "riops"),
    ("throttleWriteIOPSDevice", "wiops"),
)


def v2_writes(resources: dict[str, Any]) -> list[Write]:
    """The v2 files for ``resources`` (``controller`` is what subtree_control must enable)."""
    out: list[Write] = []
    out.extend(_pids_writes(resources))
    mem = resources.get("memory") or {}
    # v1-only memory settings: no v2 file takes them, and config-linux.md (Unified) wants an
    # error where a conversion is impossible, not a setting dropped in silence.
    for key in ("swappiness", "kernel", "kernelTCP"):
        if key in mem:
            raise SpecError(f"linux.resources.memory.{key} has no cgroup v2 equivalent")
    if mem.get("disableOOMKiller"):
        raise SpecError("linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent")
    mem_limit = _num(mem["limit"], "memory.limit") if "limit" in mem else None
    if mem_limit is not None:
        out.append(Write("memory", "memory.max", "max" if mem_limit < 0 else str(mem_limit)))
    if "reservation" in mem:
        low = _num(mem["reservation"], "memory.reservation")
        out.append(Write("memory", "memory.low", "max" if low < 0 else str(low)))
    if "swap" in mem:
        swap = _num(mem["swap"], "memory.swap")
        # v1's memsw is memory+swap; v2's swap.max is swap alone.
        if swap < 0:
            swap_max = "max"
        elif mem_limit is None or mem_limit < 0:
            raise SpecError("linux.resources.memory.swap needs memory.limit on cgroup v2")
        else:
            swap_max = str(max(swap - mem_limit, 0))
        out.append(Write("memory", "memory.swap.max", swap_max))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        weight = shares_to_weight(_num(cpu["shares"], "cpu.shares"))
        out.append(Write("cpu", "cpu.weight", str(weight)))
    if "quota" in cpu or "period" in cpu:
        quota = cpu.get("quota", -1)
        period = cpu.get("period", 100000)
        out.append(Write("cpu", "cpu.max", f"{'max' if quota <= 0 else quota} {period}"))
    if "burst" in cpu:
        out.append(Write("cpu", "cpu.max.burst", str(_num(cpu["burst"], "cpu.burst"))))
    if "idle" in cpu:
        out.append(Write("cpu", "cpu.idle", str(_num(cpu["idle"], "cpu.idle"))))
    if "realtimeRuntime" in cpu or "realtimePeriod" in cpu:
        # cgroup v2 has no realtime budget (cgroup-v2.rst, CPU): no conversion exists, and
        # config-linux.md (Unified) requires an error then.
        raise SpecError("linux.resources.cpu.realtimeRuntime/realtimePeriod have no cgroup v2 "
                        "equivalent")  # fmt: skip
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        if cpu.get(key):
            out.append(Write("cpuset", file, str(cpu[key])))
    blkio = resources.get("blockIO") or {}
    if "weight" in blkio:
        out.append(Write("io", "io.weight", str(_num(blkio["weight"], "blockIO.weight"))))
    if "leafWeight" in blkio or any("leafWeight" in d for d in blkio.get("weightDevice") or []):
        raise SpecError("linux.resources.blockIO leafWeight has no cgroup v2 equivalent")
    for d in blkio.get("weightDevice") or []:
        if "weight" in d:
            line = f"{d['major']}:{d['minor']} {_num(d['weight'], 'blockIO.weightDevice.weight')}"
            out.append(Write("io", "io.weight", line))
    for key, name in V2_THROTTLE:
        for d in blkio.get(key) or []:
            out.append(Write("io", "io.max", f"{d['major']}:{d['minor']} {name}={d['rate']}"))
    for limit in resources.get("hugepageLimits") or []:
        out.append(Write("hugetlb", f"hugetlb.{limit['pageSize']}.max", str(limit["limit"])))
    # Device rules have no file on v2: device_program() turns them into the eBPF program the
    # manager attaches (cgroup-v2.rst, "Device controller").
    for key, value in (resources.get("unified") or {}).items():
        if "/" in key or not isinstance(value, str):
            raise SpecError(f"linux.resources.unified: bad entry {key!r}")
        out.append(Write(key.split(".", 1)[0], key, value))
    return out
