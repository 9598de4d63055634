"""Intel RDT (config-linux.md "IntelRdt", runtime-spec v1.3.0), judged in the resctrl filesystem.

A CLOS is a directory of /sys/fs/resctrl (the root is the default CLOS); its ``tasks`` file lists
the pids in it and ``schemata`` its cache and memory-bandwidth allocations; a monitoring group
is a directory below its ``mon_groups``. Every check reads those files on the host: which group
the container's init is in, what the group's schemata holds, which directories exist before
create and after delete. Groups a test makes itself carry the session's token and are removed
by the test.

Only a host with RDT (a CPU flag such as ``cat_l3`` or ``rdt_a`` and resctrl mounted) can show
any of this; elsewhere those tests skip, naming what the host lacks. What such a host can check
is the error path: an ``intelRdt`` config without resctrl must make create fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.spec import IntelRdt, Spec
from conformance._support import (
    WAIT_FOREVER,
    assert_nothing_created,
    boot_seconds,
    expect_refusal,
    expect_success,
    sh,
    skip_unless_declared_spec_version,
    wait_ready,
)

RESCTRL = Path("/sys/fs/resctrl")


def _resctrl_mounted() -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "resctrl" and left.split(" ")[4] == str(RESCTRL):
            return True
    return False


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def need_resctrl() -> None:
    """Skips, saying what the host lacks, unless resctrl is mounted at /sys/fs/resctrl."""
    if _resctrl_mounted():
        return
    rdt = sorted(_cpu_flags() & {"rdt_a", "cat_l3", "cat_l2", "mba", "cqm_llc", "cqm_occup_llc"})
    if not rdt:
        pytest.skip(
            f"no resctrl at {RESCTRL}: this host's CPU shows no Intel RDT flag "
            "(rdt_a, cat_l3, mba, cqm_llc) in /proc/cpuinfo"
        )
    pytest.skip(f"the CPU has {', '.join(rdt)} but resctrl is not mounted at {RESCTRL}")


def need_declared(containers: ContainerFactory) -> None:
    """Skips when the runtime's features say it does not implement Intel RDT."""
    try:
        doc = containers.client.features()
    except Exception:  # no features verb: nothing declared either way, so judge it
        return
    linux = doc.get("linux")
    rdt = linux.get("intelRdt") if isinstance(linux, dict) else None
    if isinstance(rdt, dict) and rdt.get("enabled") is False:
        pytest.skip(f"{containers.client.name} declares intelRdt not enabled in its features")


@pytest.fixture
def resctrl(containers: ContainerFactory) -> Path:
    need_resctrl()
    need_declared(containers)
    return RESCTRL


# --- the resctrl tree --------------------------------------------------------------------------


def tasks(group: Path) -> set[int]:
    return {int(t) for t in (group / "tasks").read_text().split()}


def schemata(group: Path) -> dict[str, str]:
    """``schemata`` as resource -> "domain=value;..." (its lines are ``RESOURCE:DOMAINS``)."""
    lines = (group / "schemata").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if v}


def l3_masks() -> tuple[str, str]:
    """Two different valid L3 schemata lines for every L3 domain: the lowest ``min_cbm_bits``
    bits of the cache, and the same number of bits just above them (contiguous, as CAT needs)."""
    info = RESCTRL / "info" / "L3"
    if not info.is_dir():
        pytest.skip(f"{info} is absent: this host's RDT has no L3 cache allocation")
    full = int((info / "cbm_mask").read_text(), 16)
    bits = int((info / "min_cbm_bits").read_text())
    low = (1 << bits) - 1
    high = low << bits
    if high & full != high:
        pytest.skip(f"the L3 cache mask {full:x} is too small for two disjoint masks")
    domains = [d.partition("=")[0] for d in schemata(RESCTRL)["L3"].split(";")]
    return (
        "L3:" + ";".join(f"{d}={low:x}" for d in domains),
        "L3:" + ";".join(f"{d}={high:x}" for d in domains),
    )


def mb_line() -> str:
    info = RESCTRL / "info" / "MB"
    if not info.is_dir():
        pytest.skip(f"{info} is absent: this host's RDT has no memory bandwidth allocation")
    value = max(int((info / "min_bandwidth").read_text()), 50)
    gran = int((info / "bandwidth_gran").read_text())
    value -= value % gran
    domains = [d.partition("=")[0] for d in schemata(RESCTRL)["MB"].split(";")]
    return "MB:" + ";".join(f"{d}={value}" for d in domains)


def same_line(line: str, group: Path) -> bool:
    """Whether ``group``'s schemata holds ``line`` (values compared as the kernel prints them:
    masks in hex without leading zeros)."""
    resource, _, domains = line.partition(":")
    shown = schemata(group).get(resource.strip())
    if shown is None:
        return False

    def norm(text: str) -> dict[str, str]:
        return {d.strip(): v.strip().lstrip("0").lower() for d, _, v in
                (p.partition("=") for p in text.split(";"))}  # fmt: skip

    want = norm(domains)
    return {d: v for d, v in norm(shown).items() if d in want} == want


def snapshot() -> dict[str, str]:
    """Every directory of the resctrl tree with its schemata (tasks change with the host's
    processes, so only the groups and their allocations are compared)."""
    found = {}
    for path, dirs, files in os.walk(RESCTRL):
        rel = os.path.relpath(path, RESCTRL)
        dirs[:] = [d for d in dirs if d != "info"]
        found[rel] = (Path(path) / "schemata").read_text() if "schemata" in files else ""
    return found


@contextlib.contextmanager
def own_group(containers: ContainerFactory, name: str, line: str | None = None) -> Iterator[Path]:
    """A CLOS this test makes (named with the session's token), removed afterwards."""
    group = RESCTRL / f"{containers.id_prefix}-{name}"
    group.mkdir()
    try:
        if line is not None:
            (group / "schemata").write_text(line + "\n")
        yield group
    finally:
        remove_group(group)


def remove_group(group: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        # rmdir(2) of a CLOS moves its tasks back to the default one (resctrl docs).
        group.rmdir()


def with_rdt(containers: ContainerFactory, rdt: IntelRdt, needed: str = "1.0.2") -> Spec:
    spec = containers.spec(sh(WAIT_FOREVER))
    assert spec.linux is not None
    spec.linux.intel_rdt = rdt
    if needed != "1.0.2":
        spec.oci_version = needed
    return spec


@contextlib.contextmanager
def running(containers: ContainerFactory, spec: Spec) -> Iterator[Container]:
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        yield ctr


def need_spec(containers: ContainerFactory, version: str, what: str) -> None:
    skip_unless_declared_spec_version(containers.client, version, what, must_declare=True)


# --- without resctrl: the error path -------------------------------------------------------------


@pytest.mark.spec("config-linux.intelrdt.2")
def test_intel_rdt_without_resctrl_makes_create_fail(containers: ContainerFactory) -> None:
    if _resctrl_mounted():
        pytest.skip(f"resctrl is mounted at {RESCTRL}: the error path needs a host without it")
    control = containers.spec(sh(WAIT_FOREVER))
    with containers.bundle(control) as (cid, bundle):
        expect_success(containers.client.create(cid, bundle.path, check=False), "the control")
    variants: list[dict[str, Any]] = [
        {"closID": f"{containers.id_prefix}-rdt"},
        {"l3CacheSchema": "L3:0=f"},
        {"memBwSchema": "MB:0=50"},
    ]
    accepted = []
    for rdt in variants:
        spec = containers.spec(sh(WAIT_FOREVER))
        assert spec.linux is not None
        spec.linux.intel_rdt = IntelRdt.model_validate(rdt, by_alias=True)
        with containers.bundle(spec) as (cid, bundle):
            since = boot_seconds()
            call = containers.client.create(cid, bundle.path, check=False)
            if call.returncode == 0:
                accepted.append(rdt)
                continue
            expect_refusal(call, f"intelRdt {rdt} without resctrl")
            assert_nothing_created(containers, cid, bundle=bundle, since=since)
    assert not accepted, f"created with intelRdt although no resctrl is mounted: {accepted}"


# --- with resctrl ------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.intelrdt.3")
def test_without_intel_rdt_resctrl_is_untouched(
    containers: ContainerFactory, resctrl: Path
) -> None:
    before = snapshot()
    with running(containers, containers.spec(sh(WAIT_FOREVER))) as ctr:
        during = snapshot()
        pid = ctr.pid
        clos = [RESCTRL / g for g in during if g != "." and "/" not in g]
        joined = [g for g in clos if (g / "tasks").exists() and pid in tasks(g)]
        assert not joined, f"the init of a container without intelRdt is in {joined}"
    after = snapshot()
    # The control: the same comparison sees a group made meanwhile.
    with own_group(containers, "probe"):
        assert snapshot() != after, "the snapshot does not see a new group"
    assert during == before and after == before, (
        f"resctrl changed: before {sorted(before)}, during {sorted(during)}, after {sorted(after)}"
    )


@pytest.mark.spec("config-linux.intelrdt.1", "config-linux.intelrdt.19", "config-linux.intelrdt.21")
def test_the_init_joins_the_existing_group_named_by_clos_id(
    containers: ContainerFactory, resctrl: Path
) -> None:
    with own_group(containers, "join") as group:
        with running(containers, with_rdt(containers, IntelRdt(clos_id=group.name))) as ctr:
            assert ctr.pid in tasks(group), f"init {ctr.pid} is not in {group}/tasks"
        assert group.is_dir(), f"deleting the container removed the pre-made group {group}"


@pytest.mark.spec("config-linux.intelrdt.4")
def test_clos_id_slash_is_the_default_clos(containers: ContainerFactory, resctrl: Path) -> None:
    need_spec(containers, "1.3.0", 'intelRdt.closID "/"')
    before = snapshot()
    with running(containers, with_rdt(containers, IntelRdt(clos_id="/"), "1.3.0")) as ctr:
        assert ctr.pid in tasks(RESCTRL), f"init {ctr.pid} is not in {RESCTRL}/tasks"
        assert snapshot().keys() == before.keys(), "a group was made for closID '/'"


@pytest.mark.spec(
    "config-linux.intelrdt.15", "config-linux.intelrdt.20", "config-linux.intelrdt.12"
)
def test_without_clos_id_a_group_named_after_the_container_is_made_and_removed(
    containers: ContainerFactory, resctrl: Path
) -> None:
    low, _ = l3_masks()
    spec = with_rdt(containers, IntelRdt(l3_cache_schema=low))
    with running(containers, spec) as ctr:
        group = RESCTRL / ctr.id
        try:
            assert group.is_dir(), f"no group {group} for a container without closID"
            assert ctr.pid in tasks(group), f"init {ctr.pid} is not in {group}/tasks"
            assert same_line(low, group), f"{group}/schemata {schemata(group)} lacks {low}"
            ctr.kill("KILL")
            ctr.wait_for("stopped")
            ctr.delete()
            assert not group.exists(), f"{group} is still there after delete"
        finally:
            remove_group(group)


@pytest.mark.spec("config-linux.intelrdt.16", "config-linux.intelrdt.12")
def test_a_missing_clos_id_group_with_a_schema_is_made(
    containers: ContainerFactory, resctrl: Path
) -> None:
    low, _ = l3_masks()
    group = RESCTRL / f"{containers.id_prefix}-new"
    assert not group.exists()
    try:
        spec = with_rdt(containers, IntelRdt(clos_id=group.name, l3_cache_schema=low))
        with running(containers, spec) as ctr:
            assert group.is_dir(), f"{group} was not made"
            assert ctr.pid in tasks(group)
            assert same_line(low, group), f"{group}/schemata {schemata(group)} lacks {low}"
    finally:
        remove_group(group)


@pytest.mark.spec("config-linux.intelrdt.10")
def test_both_schemas_are_written(containers: ContainerFactory, resctrl: Path) -> None:
    low, _ = l3_masks()
    mb = mb_line()
    spec = with_rdt(containers, IntelRdt(l3_cache_schema=low, mem_bw_schema=mb))
    with running(containers, spec) as ctr:
        group = RESCTRL / ctr.id
        try:
            assert same_line(low, group) and same_line(mb, group), schemata(group)
        finally:
            ctr.kill("KILL")


@pytest.mark.spec("config-linux.intelrdt.13")
def test_schemata_lines_are_written(containers: ContainerFactory, resctrl: Path) -> None:
    need_spec(containers, "1.3.0", "intelRdt.schemata")
    _, high = l3_masks()
    spec = with_rdt(containers, IntelRdt(schemata=[high]), "1.3.0")
    with running(containers, spec) as ctr:
        assert same_line(high, RESCTRL / ctr.id), schemata(RESCTRL / ctr.id)


@pytest.mark.spec("config-linux.intelrdt.14")
def test_without_schemas_the_groups_schemata_is_left_alone(
    containers: ContainerFactory, resctrl: Path
) -> None:
    _, high = l3_masks()
    with own_group(containers, "keep", high) as group:
        before = (group / "schemata").read_text()
        with running(containers, with_rdt(containers, IntelRdt(clos_id=group.name))) as ctr:
            assert ctr.pid in tasks(group)
            assert (group / "schemata").read_text() == before


@pytest.mark.spec("config-linux.intelrdt.17")
def test_a_group_whose_schemata_differs_is_refused(
    containers: ContainerFactory, resctrl: Path
) -> None:
    low, high = l3_masks()
    with own_group(containers, "differs", low) as group:
        same = with_rdt(containers, IntelRdt(clos_id=group.name, l3_cache_schema=low))
        with containers.bundle(same) as (cid, bundle):
            expect_success(containers.client.create(cid, bundle.path, check=False), "same mask")
        other = with_rdt(containers, IntelRdt(clos_id=group.name, l3_cache_schema=high))
        with containers.bundle(other) as (cid, bundle):
            call = containers.client.create(cid, bundle.path, check=False)
            expect_refusal(call, f"closID {group.name} whose schemata differs")
        assert same_line(low, group), "the refused create changed the group's schemata"


@pytest.mark.spec("config-linux.intelrdt.18", "config-linux.intelrdt.19")
def test_a_missing_group_without_schemas_is_refused_and_not_made(
    containers: ContainerFactory, resctrl: Path
) -> None:
    group = RESCTRL / f"{containers.id_prefix}-absent"
    assert not group.exists()
    try:
        spec = with_rdt(containers, IntelRdt(clos_id=group.name))
        with containers.bundle(spec) as (cid, bundle):
            since = boot_seconds()
            call = containers.client.create(cid, bundle.path, check=False)
            expect_refusal(call, f"closID {group.name} naming no group, without schemas")
            assert_nothing_created(containers, cid, bundle=bundle, since=since)
        assert not group.exists(), f"the refused create made {group}"
        # The control: with the group there, the same config is accepted.
        group.mkdir()
        with containers.bundle(spec) as (cid, bundle):
            expect_success(containers.client.create(cid, bundle.path, check=False), "the control")
    finally:
        remove_group(group)


def need_monitoring(containers: ContainerFactory) -> None:
    need_spec(containers, "1.3.0", "intelRdt.enableMonitoring")
    if not (RESCTRL / "info" / "L3_MON").is_dir():
        pytest.skip(f"{RESCTRL}/info/L3_MON is absent: this host's RDT has no monitoring")


@pytest.mark.spec(
    "config-linux.intelrdt.22", "config-linux.intelrdt.23", "config-linux.intelrdt.24"
)
def test_enable_monitoring_makes_a_mon_group_named_after_the_container(
    containers: ContainerFactory, resctrl: Path
) -> None:
    need_monitoring(containers)
    low, _ = l3_masks()
    spec = with_rdt(containers, IntelRdt(l3_cache_schema=low, enable_monitoring=True), "1.3.0")
    with running(containers, spec) as ctr:
        group = RESCTRL / ctr.id
        mon = group / "mon_groups" / ctr.id
        try:
            assert mon.is_dir(), f"no MON group {mon}"
            assert ctr.pid in tasks(mon), f"init {ctr.pid} is not in {mon}/tasks"
            ctr.kill("KILL")
            ctr.wait_for("stopped")
            ctr.delete()
            assert not mon.exists(), f"{mon} is still there after delete"
        finally:
            with contextlib.suppress(FileNotFoundError):
                mon.rmdir()
            remove_group(group)


@pytest.mark.spec("config-linux.intelrdt.25")
def test_a_mon_group_that_cannot_be_made_fails_create(
    containers: ContainerFactory, resctrl: Path
) -> None:
    need_monitoring(containers)
    made: list[Path] = []
    with own_group(containers, "rmids") as group:
        spec = with_rdt(containers, IntelRdt(clos_id=group.name, enable_monitoring=True), "1.3.0")
        try:
            # Every free RMID taken by MON groups of our own (mkdir fails with ENOSPC then).
            count = int((RESCTRL / "info" / "L3_MON" / "num_rmids").read_text())
            for i in range(count + 1):
                path = group / "mon_groups" / f"{containers.id_prefix}-m{i}"
                try:
                    path.mkdir()
                except OSError:
                    break
                made.append(path)
            else:
                pytest.skip(f"{count + 1} MON groups could be made: the RMIDs do not run out")
            with containers.bundle(spec) as (cid, bundle):
                call = containers.client.create(cid, bundle.path, check=False)
                expect_refusal(call, "enableMonitoring with every RMID taken")
            made.pop().rmdir()  # the control: one RMID free again
            with containers.bundle(spec) as (cid, bundle):
                expect_success(containers.client.create(cid, bundle.path, check=False), "control")
        finally:
            for path in made:
                with contextlib.suppress(OSError):
                    path.rmdir()
