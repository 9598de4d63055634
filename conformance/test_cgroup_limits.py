"""linux.resources (config-linux.md "Control groups"): the values the config asks for, read back
from the container's cgroup files on the host, and enforced where the kernel shows it.

The files are found from the host's side (conformance/_cgroups.py): the container init's cgroup
in each hierarchy from /proc/<pid>/cgroup, the hierarchy holding each controller from
mountinfo, so the same test reads ``memory.limit_in_bytes`` on a v1 host and ``memory.max`` on
a v2 one. The values are read while the container is ``created``: create applies every config
property but the process (runtime.md, create). A knob the host has no file for is skipped
with the host's reason, never taken as applied.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.spec import (
    CPU,
    BlockIO,
    HugepageLimit,
    Memory,
    Pids,
    Resources,
    Spec,
    ThrottleDevice,
)
from conformance._cgroups import Knob, ProcessCgroups, layout, remove_leftovers
from conformance._support import (
    WAIT_FOREVER,
    assert_nothing_created,
    refused,
    sh,
    skip_unless_declared_spec_version,
)

MiB = 1 << 20


def with_resources(spec: Spec, resources: Resources) -> Spec:
    assert spec.linux is not None
    # The default config's device rules (deny all) stay: the runtime adds its defaults.
    resources.devices = spec.linux.resources.devices if spec.linux.resources else None
    spec.linux.resources = resources
    return spec


def _block_device() -> tuple[int, int]:
    """major:minor of a whole disk of this host (throttling takes disks, not partitions)."""
    for entry in sorted(Path("/sys/block").iterdir()):
        if entry.name.startswith(("loop", "ram", "nbd")):
            continue
        dev = (entry / "dev").read_text().strip()
        major, minor = dev.split(":")
        return int(major), int(minor)
    pytest.skip("this host has no block device to throttle (/sys/block lists none)")


def _memory_nodes() -> list[str]:
    nodes = Path("/sys/devices/system/node")
    return sorted(p.name.removeprefix("node") for p in nodes.glob("node[0-9]*")) or ["0"]


def _last_cpu() -> str:
    allowed = sorted(os.sched_getaffinity(0))
    return str(allowed[-1])


@dataclass(frozen=True)
class Case:
    """One resource: how to set it, which file shows it, and what that file must read."""

    resources: Callable[[], Resources]
    v1: str | None
    v2: str | None
    # The file's contents (stripped) → whether they show the configured value; per version.
    shows: Callable[[int, str], bool]
    needs: str = ""  # the runtime-spec version that brought the field, if newer than 1.0.2


def _equals(v1: str, v2: str) -> Callable[[int, str], bool]:
    return lambda version, text: text == (v1 if version == 1 else v2)


def _throttle(key: str, v2_key: str) -> Case:
    major, minor = _block_device()
    return Case(
        lambda: Resources(block_io=BlockIO(**{key: [ThrottleDevice(major=major, minor=minor,
                                                                   rate=1048576)]})),
        f"blkio.throttle.{'read' if 'read' in key else 'write'}_"
        f"{'bps' if 'bps' in key else 'iops'}_device",
        "io.max",
        lambda version, text: (
            f"{major}:{minor} 1048576" in text.splitlines()
            if version == 1
            else any(
                line.split()[0] == f"{major}:{minor}" and f"{v2_key}=1048576" in line.split()
                for line in text.splitlines()
            )
        ),
    )  # fmt: skip


CASES: dict[str, tuple[Callable[[], Case], tuple[str, ...]]] = {
    "pids-limit": (
        lambda: Case(lambda: Resources(pids=Pids(limit=37)), "pids.max", "pids.max",
                     _equals("37", "37")),
        ("config-linux.pids.apply-pids-limit",),
    ),
    "memory-limit": (
        lambda: Case(lambda: Resources(memory=Memory(limit=96 * MiB)), "memory.limit_in_bytes",
                     "memory.max", _equals(str(96 * MiB), str(96 * MiB))),
        ("config-linux.memory.apply-memory-limit",),
    ),
    "memory-reservation": (
        lambda: Case(lambda: Resources(memory=Memory(limit=96 * MiB, reservation=48 * MiB)),
                     "memory.soft_limit_in_bytes", "memory.low",
                     _equals(str(48 * MiB), str(48 * MiB))),
        ("config-linux.memory.apply-memory-reservation",),
    ),
    "memory-swap": (
        # v1's memsw counts memory and swap together, v2's swap.max swap alone (the spec's
        # "memory+Swap", as runtimes convert it).
        lambda: Case(lambda: Resources(memory=Memory(limit=96 * MiB, swap=160 * MiB)),
                     "memory.memsw.limit_in_bytes", "memory.swap.max",
                     _equals(str(160 * MiB), str(64 * MiB))),
        ("config-linux.memory.apply-memory-swap",),
    ),
    "memory-swappiness": (
        lambda: Case(lambda: Resources(memory=Memory(swappiness=37)), "memory.swappiness", None,
                     _equals("37", "")),
        ("config-linux.memory.apply-memory-swappiness",),
    ),
    "memory-disable-oom-killer": (
        lambda: Case(lambda: Resources(memory=Memory(limit=96 * MiB, disable_oom_killer=True)),
                     "memory.oom_control", None,
                     lambda _, text: "oom_kill_disable 1" in text.splitlines()),
        ("config-linux.memory.apply-memory-disable-oom-killer",),
    ),
    "cpu-shares": (
        # v2 has cpu.weight (1..10000, default 100); how shares convert is the runtime's
        # choice (config-linux.md, Unified: "MAY attempt a conversion"), so v2 is judged by
        # the value having moved below the default, as 512 shares (half of 1024) must.
        lambda: Case(lambda: Resources(cpu=CPU(shares=512)), "cpu.shares", "cpu.weight",
                     lambda v, text: text == "512" if v == 1 else 1 <= int(text) < 100),
        ("config-linux.cpu.apply-cpu-shares",),
    ),
    "cpu-quota": (
        lambda: Case(lambda: Resources(cpu=CPU(quota=30000, period=200000)),
                     "cpu.cfs_quota_us", "cpu.max", _equals("30000", "30000 200000")),
        ("config-linux.cpu.apply-cpu-quota-period",),
    ),
    "cpu-period": (
        lambda: Case(lambda: Resources(cpu=CPU(quota=30000, period=200000)),
                     "cpu.cfs_period_us", "cpu.max", _equals("200000", "30000 200000")),
        ("config-linux.cpu.apply-cpu-quota-period",),
    ),
    "cpu-realtime-runtime": (
        lambda: Case(lambda: Resources(cpu=CPU(realtime_runtime=5000, realtime_period=1000000)),
                     "cpu.rt_runtime_us", None, _equals("5000", "")),
        ("config-linux.cpu.apply-cpu-realtime",),
    ),
    "cpu-realtime-period": (
        lambda: Case(lambda: Resources(cpu=CPU(realtime_runtime=5000, realtime_period=500000)),
                     "cpu.rt_period_us", None, _equals("500000", "")),
        ("config-linux.cpu.apply-cpu-realtime",),
    ),
    "cpu-idle": (
        lambda: Case(lambda: Resources(cpu=CPU(idle=1)), "cpu.idle", "cpu.idle",
                     _equals("1", "1"), needs="1.1.0"),
        ("config-linux.cpu.apply-cpu-idle",),
    ),
    "cpu-burst": (
        lambda: Case(lambda: Resources(cpu=CPU(quota=30000, burst=20000, period=200000)),
                     "cpu.cfs_burst_us", "cpu.max.burst", _equals("20000", "20000"),
                     needs="1.1.0"),
        ("config-linux.cpu.apply-cpu-burst",),
    ),
    "cpuset-cpus": (
        lambda: Case(lambda: Resources(cpu=CPU(cpus=_last_cpu())), "cpuset.cpus",
                     "cpuset.cpus", _equals(_last_cpu(), _last_cpu())),
        ("config-linux.cpu.apply-cpu-cpus",),
    ),
    "cpuset-mems": (
        lambda: Case(lambda: Resources(cpu=CPU(mems="0")), "cpuset.mems", "cpuset.mems",
                     _equals("0", "0")),
        ("config-linux.cpu.apply-cpu-mems",),
    ),
    "blkio-throttle-read-bps": (
        lambda: _throttle("throttle_read_bps_device", "rbps"),
        ("config-linux.block-io.apply-blkio-throttle-bps",),
    ),
    "blkio-throttle-write-bps": (
        lambda: _throttle("throttle_write_bps_device", "wbps"),
        ("config-linux.block-io.apply-blkio-throttle-bps",),
    ),
    "blkio-throttle-read-iops": (
        lambda: _throttle("throttle_read_iops_device", "riops"),
        ("config-linux.block-io.apply-blkio-throttle-iops",),
    ),
    "blkio-throttle-write-iops": (
        lambda: _throttle("throttle_write_iops_device", "wiops"),
        ("config-linux.block-io.apply-blkio-throttle-iops",),
    ),
}  # fmt: skip


@contextlib.contextmanager
def created(containers: ContainerFactory, spec: Spec) -> Iterator[Container]:
    """A created container; a refused create fails the test with the runtime's reason, after
    removing the cgroups such a create may have left (the failure says so)."""
    with containers.container(spec, create=False) as ctr:
        call = ctr.create(check=False)
        if refused(call):
            left = remove_leftovers(ctr.id)
            raise AssertionError(
                f"create was refused: {call.stderr.strip() or call.stdout.strip()}"
                + (f"; it left cgroups behind: {[str(p) for p in left]}" if left else "")
            )
        yield ctr


def _knob(cgroups: ProcessCgroups, case: Case) -> Knob:
    knob = cgroups.knob(v1=case.v1, v2=case.v2)
    if not knob.exists:
        pytest.skip(f"the kernel offers no {knob.path.name} in the container's cgroup "
                    f"({knob.path.parent}): this host cannot show the setting")  # fmt: skip
    return knob


@pytest.mark.spec("runtime.create.5")
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.spec(*ids)) for n, (_, ids) in CASES.items()]
)
def test_the_configured_value_is_in_the_containers_cgroup(
    containers: ContainerFactory, name: str
) -> None:
    case = CASES[name][0]()
    if case.v2 is None and case.v1 is not None:
        host = layout()
        hierarchy = host.hierarchy_of(case.v1.split(".", 1)[0])
        if hierarchy is None or hierarchy.version == 2:
            # A v1-only setting (cgroup-v2.rst has no such knob): on v2 the runtime must refuse
            # it (config-linux.unified.5), which test_cgroups.py's
            # test_a_v1_setting_with_no_v2_equivalent_is_an_error_on_v2 checks.
            pytest.skip(
                f"{case.v1} has no cgroup v2 equivalent and this host's controller is in "
                f"cgroup v2 ({host.describe()}): the runtime must refuse it"
            )
    if name == "cpuset-mems" and _memory_nodes() == ["0"]:
        pytest.skip("this host has one memory node: cpuset.mems 0 is what any cpuset inherits, "
                    "so the setting cannot be told from its absence")  # fmt: skip
    if case.needs:
        skip_unless_declared_spec_version(
            containers.client, case.needs, f"linux.resources ({name})", must_declare=True
        )
    spec = with_resources(containers.spec(sh(WAIT_FOREVER)), case.resources())
    if case.needs:
        spec.oci_version = case.needs
    with created(containers, spec) as ctr:
        knob = _knob(ProcessCgroups(ctr.pid), case)
        text = knob.read()
        assert case.shows(knob.version, text), (
            f"{knob.path} reads {text!r} for {name} (cgroup v{knob.version})"
        )


# The kernel's default weight of a new v2 cgroup, in io.weight and io.bfq.weight alike
# (cgroup-v2.rst, "IO Interface Files"; block/bfq-cgroup.c).
V2_DEFAULT_WEIGHT = 100


def _v2_default_weight(words: list[str]) -> int | None:
    """The default weight an io.weight / io.bfq.weight file shows: its ``default N`` line (a
    BFQ file may show the bare number)."""
    if len(words) >= 2 and words[0] == "default" and words[1].isdigit():
        return int(words[1])
    return int(words[0]) if words and words[0].isdigit() else None


@pytest.mark.spec("runtime.create.5", "config-linux.block-io.apply-blkio-weight")
def test_the_blkio_weight_is_in_the_containers_cgroup(containers: ContainerFactory) -> None:
    resources = Resources(block_io=BlockIO(weight=321))
    spec = with_resources(containers.spec(sh(WAIT_FOREVER)), resources)
    with created(containers, spec) as ctr:
        cgroups = ProcessCgroups(ctr.pid)
        # The weight file depends on the I/O scheduler: blkio.weight (CFQ) or blkio.bfq.weight
        # on v1, io.weight or io.bfq.weight on v2; the test reads whichever the kernel made.
        v1 = cgroups.layout.hierarchy_of("blkio") is not None
        directory = cgroups.dir("blkio" if v1 else "io")
        names = ("blkio.weight", "blkio.bfq.weight") if v1 else ("io.weight", "io.bfq.weight")
        present = [directory / n for n in names if (directory / n).is_file()]
        if not present:
            pytest.skip(f"no I/O weight file in {directory}: this host's block devices use no "
                        "weight-based I/O scheduler")  # fmt: skip
        shown = {p.name: p.read_text().split() for p in present}
        if v1:
            assert any("321" in words for words in shown.values()), shown
            return
        # v2 weights span 1..10000 where v1's span 10..1000, so a runtime MAY convert
        # (config-linux.unified.4: runc and crun map 321 to 3142): the weight must have left
        # the kernel's default, whatever value it took.
        defaults = {name: _v2_default_weight(words) for name, words in shown.items()}
        assert any(w is not None and w != V2_DEFAULT_WEIGHT for w in defaults.values()), (
            f"blockIO.weight 321 left the default weight {V2_DEFAULT_WEIGHT} in place: {shown}"
        )


def _hugepage_size() -> str:
    sizes = sorted(
        int(p.name.removeprefix("hugepages-").removesuffix("kB"))
        for p in Path("/sys/kernel/mm/hugepages").glob("hugepages-*kB")
    )
    if not sizes:
        pytest.skip("this kernel offers no huge pages (/sys/kernel/mm/hugepages is empty)")
    kib = sizes[0]
    return f"{kib // 1024}MB" if kib >= 1024 and kib < 1 << 20 else f"{kib >> 20}GB"


@pytest.mark.spec("runtime.create.5", "config-linux.huge-page-limits.apply-hugepage-limits",
                  "runtime.create.9")  # fmt: skip
def test_a_hugepage_limit_is_applied_or_refused(containers: ContainerFactory) -> None:
    size = _hugepage_size()
    limit = 4 * MiB if size.endswith("MB") else 1 << 30
    spec = with_resources(
        containers.spec(sh(WAIT_FOREVER)),
        Resources(hugepage_limits=[HugepageLimit(page_size=size, limit=limit)]),
    )
    host = layout()
    hierarchy = host.hierarchy_of("hugetlb")
    with containers.container(spec, create=False) as ctr:
        call = ctr.create(check=False)
        if refused(call):
            # A runtime that cannot apply it must say so and create nothing (runtime.md, create).
            assert hierarchy is None or (hierarchy.version == 2 and host.mode == "hybrid"), (
                f"create refused a hugepage limit the host's hugetlb controller can hold "
                f"({host.describe()}): {call.stderr.strip()}"
            )
            try:
                assert_nothing_created(containers, ctr.id, bundle=ctr.bundle)
            finally:
                remove_leftovers(ctr.id, host)
            return
        if hierarchy is None:
            raise AssertionError(
                f"create accepted hugepageLimits on a host with no hugetlb controller "
                f"({host.describe()}): the limit cannot be in force"
            )
        knob = ProcessCgroups(ctr.pid, host).knob(
            v1=f"hugetlb.{size}.limit_in_bytes", v2=f"hugetlb.{size}.max"
        )
        # Where the kernel accounts reservations, the spec prefers the .rsvd files.
        rsvd = knob.path.with_name(knob.path.name.replace(f"{size}.", f"{size}.rsvd.", 1))
        shown = {p.name: p.read_text().strip() for p in (knob.path, rsvd) if p.is_file()}
        assert str(limit) in shown.values(), (
            f"create accepted hugepageLimits {size}={limit} but the container's cgroup "
            f"({knob.path.parent}) shows {shown}"
        )


# --- enforcement ----------------------------------------------------------------------------------

# Starts background sleeps until a fork fails; records how many started. busybox sh exits
# (status 2) when it cannot fork; ``LIMIT + 5`` bounds the loop for a runtime that sets no limit.
_FORK_UNTIL_REFUSED = (
    "n=0; while [ $n -lt {bound} ]; do sleep 1000 & n=$((n+1)); echo $n >/started; done; exit 0"
)


@pytest.mark.spec("config-linux.pids.apply-pids-limit")
def test_a_fork_past_the_pids_limit_fails(containers: ContainerFactory) -> None:
    limit = 6
    spec = with_resources(
        containers.spec(sh(_FORK_UNTIL_REFUSED.format(bound=limit + 5))),
        Resources(pids=Pids(limit=limit)),
    )
    with containers.bundle(spec) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        started = (bundle.upper / "started").read_text().strip()
    # The shell itself is one of the tasks: limit - 1 sleeps fit, the next fork fails.
    assert started == str(limit - 1), (
        f"{started} background processes started under pids.limit {limit}; stderr: "
        f"{call.stderr.strip()}"
    )
    assert "Resource temporarily unavailable" in call.stderr, (
        f"the refused fork did not fail with EAGAIN: {call.stderr.strip()}"
    )


# A memory hog: busybox dd allocates one buffer of ``bs`` bytes and fills it from /dev/zero,
# touching every page; run as the container process, its death is the container's.
_HOG = "exec dd if=/dev/zero of=/dev/null bs={mib}M count=1"


@pytest.mark.spec("config-linux.memory.apply-memory-limit")
def test_a_process_past_the_memory_limit_is_oom_killed(containers: ContainerFactory) -> None:
    outcomes = {}
    # The control first: under a limit well above it, the same hog finishes.
    for limit in (128 * MiB, 16 * MiB):
        memory = Memory(limit=limit, swap=limit)  # no swap to escape to
        spec = with_resources(containers.spec(sh(_HOG.format(mib=32))), Resources(memory=memory))
        with containers.bundle(spec) as (cid, bundle):
            outcomes[limit] = containers.client.run(cid, bundle.path)
    control = outcomes[128 * MiB]
    assert control.returncode == 0, f"the hog failed under 128 MiB: {control.stderr.strip()}"
    killed = outcomes[16 * MiB]
    # runc's convention (and the shell's): a process killed by a signal exits 128 + signal.
    assert killed.returncode == 128 + 9, (
        f"a 32 MiB hog under a 16 MiB limit ended with status {killed.returncode}, not by "
        f"SIGKILL (137); stderr: {killed.stderr.strip()}"
    )


@pytest.mark.spec("config-linux.cpu.apply-cpu-cpus", "config-linux.cpu.apply-cpu-mems")
def test_the_cpuset_confines_the_container_process(containers: ContainerFactory) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this host gives the test one CPU: a cpuset of one would not show")
    cpu = _last_cpu()
    probe = sh("grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status")
    seen = {}
    # The control first: unconfined, the same probe shows the host's CPUs, not just one.
    for resources in (None, Resources(cpu=CPU(cpus=cpu, mems="0"))):
        spec = containers.spec(probe)
        if resources is not None:
            spec = with_resources(spec, resources)
        result = containers.run(spec)
        assert result.exit_code == 0, result.stderr
        seen[resources is None] = dict(
            line.split(":", 1) for line in result.stdout.strip().splitlines()
        )
    unconfined = {k: v.strip() for k, v in seen[True].items()}
    confined = {k: v.strip() for k, v in seen[False].items()}
    assert unconfined["Cpus_allowed_list"] != cpu, unconfined
    assert confined == {"Cpus_allowed_list": cpu, "Mems_allowed_list": "0"}
