"""Where a container's cgroup is (config-linux.md "Control groups": cgroupsPath), what the runtime
does with ``linux.resources.unified`` (cgroup v2 files by name), memory.checkBeforeUpdate, and
the cgroup ownership rules for a user-namespaced container.

Places are judged on the host: the container init's line in /proc/<pid>/cgroup, read in the
host's cgroup namespace, and the init's pid in that directory's ``cgroup.procs`` under the
hierarchy's mount point (conformance/_cgroups.py finds the mounts from mountinfo, so the same
tests read /sys/fs/cgroup/<controller>/... on a v1 host and /sys/fs/cgroup/... on a v2 one).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory, poll
from bulkhead.runtime import Call
from bulkhead.spec import CPU, IDMapping, Memory, Mount, Namespace, Pids, Resources, Spec
from conformance._cgroups import (
    Hierarchy,
    ProcessCgroups,
    cgroup_lines,
    layout,
    procs_of,
    remove_leftovers,
    removed_afterwards,
)
from conformance._support import (
    WAIT_FOREVER,
    assert_nothing_created,
    expect_refusal,
    expect_success,
    refused,
    sh,
    wait_ready,
)

MiB = 1 << 20


def _with(spec: Spec, *, path: str | None, resources: Resources | None = None) -> Spec:
    assert spec.linux is not None
    spec.linux.cgroups_path = path
    if resources is not None:
        resources.devices = spec.linux.resources.devices if spec.linux.resources else None
        spec.linux.resources = resources
    return spec


def _placed(ctr: Container) -> dict[Path, str]:
    """Mount point → the init's cgroup path there, for every hierarchy the host mounts."""
    cgroups = ProcessCgroups(ctr.pid)
    return {h.mount: cgroups.path_in(h) for h in cgroups.layout.hierarchies}


def _own_places() -> dict[Path, str]:
    """Where the test process itself (and so the runtime it starts) sits in each hierarchy."""
    cgroups = ProcessCgroups(os.getpid())
    return {h.mount: cgroups.path_in(h) for h in cgroups.layout.hierarchies}


def _controller_hierarchy(controller: str) -> Hierarchy:
    h = layout().hierarchy_of(controller)
    if h is None:
        pytest.skip(f"no cgroup hierarchy on this host holds {controller} ({layout().describe()})")
    return h


# --- cgroupsPath ---------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.cgroups-path.2", "config-linux.cgroups-path.1")
def test_an_absolute_cgroups_path_is_taken_from_the_mount_point(
    containers: ContainerFactory,
) -> None:
    pids = _controller_hierarchy("pids")
    # A nested path carrying the session's token (so the leak sentinel knows it as ours).
    path = f"/{containers.new_id()}-outer/c1"
    spec = _with(containers.spec(sh(WAIT_FOREVER)), path=path,
                 resources=Resources(pids=Pids(limit=50)))  # fmt: skip
    with removed_afterwards(layout(), path), containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        # The pids limit makes the runtime use the pids controller: there, at least, the
        # container must have been placed at <mount>/<cgroupsPath>.
        directory = pids.mount / path.lstrip("/")
        assert ctr.pid in procs_of(directory), (
            f"the init {ctr.pid} is not in {directory}/cgroup.procs; /proc/{ctr.pid}/cgroup:\n"
            + Path(f"/proc/{ctr.pid}/cgroup").read_text()
        )
        assert (directory / "pids.max").read_text().strip() == "50"
        # Every other hierarchy that holds the container apart from its runtime holds it at
        # that same path: the path is relative to each mount point, not to the runtime.
        own = _own_places()
        moved = {m: p for m, p in _placed(ctr).items() if p != own[m]}
        assert moved and all(p == path for p in moved.values()), moved


@pytest.mark.spec("config-linux.cgroups-path.4", "config-linux.cgroups-path.1")
@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_the_same_cgroups_path_maps_to_the_same_place(
    containers: ContainerFactory, kind: str
) -> None:
    _controller_hierarchy("pids")
    cid = containers.new_id()
    # One path component: a runtime places a relative path under a parent of its choosing
    # (cgroups-path.3), which the test cannot know to clean up beyond the leaf.
    path = f"/{cid}-same" if kind == "absolute" else f"{cid}-same"
    seen = []
    with removed_afterwards(layout(), path.lstrip("/")):
        for _ in range(2):  # two successive containers, the first gone before the second
            spec = _with(containers.spec(sh(WAIT_FOREVER)), path=path,
                         resources=Resources(pids=Pids(limit=50)))  # fmt: skip
            with containers.container(spec, start=True) as ctr:
                wait_ready(ctr)
                cgroups = ProcessCgroups(ctr.pid)
                directory = cgroups.dir("pids")
                assert ctr.pid in procs_of(directory), f"init not in {directory}/cgroup.procs"
                assert (directory / "pids.max").read_text().strip() == "50"
                seen.append(cgroup_lines(ctr.pid))
    assert seen[0] == seen[1], f"the same cgroupsPath {path!r} went to two places: {seen}"
    pids_path = next(p for _, names, p in seen[0] if "pids" in names or not names)
    assert pids_path.endswith("/" + path.lstrip("/")), (
        f"cgroupsPath {path!r} ended up at {pids_path!r}"
    )


@pytest.mark.spec("config-linux.cgroups-path.5", "runtime.create.5")
def test_without_cgroups_path_the_limits_apply_to_a_cgroup_of_the_containers_own(
    containers: ContainerFactory,
) -> None:
    pids = _controller_hierarchy("pids")
    spec = containers.spec(sh(WAIT_FOREVER))
    # The factory names every container's cgroup after it; this test leaves the choice to the
    # runtime (an empty cgroupsPath is "unset" to runc and crun alike, but not valid JSON
    # Schema-wise for every runtime: use the dict form to drop the key).
    document = spec.to_json_dict()
    document["linux"]["resources"]["pids"] = {"limit": 43}
    own = ProcessCgroups(os.getpid()).path_in(pids)
    with containers.container(document, start=True) as ctr:
        wait_ready(ctr)
        cgroups = ProcessCgroups(ctr.pid)
        directory = cgroups.dir("pids")
        assert cgroups.path_in(pids) != own, (
            "without cgroupsPath the container shares its runtime's pids cgroup, so its limit "
            f"would bind the runtime: {own}"
        )
        assert ctr.pid in procs_of(directory)
        assert (directory / "pids.max").read_text().strip() == "43"


# --- unified (cgroup v2 files by name) ----------------------------------------------------------


def _v2_holding(*controllers: str) -> Hierarchy:
    """The cgroup2 hierarchy, if it holds every controller named; skips with the reason."""
    host = layout()
    v2 = host.v2
    if v2 is None:
        pytest.skip(f"linux.resources.unified is for cgroup v2; this host has none "
                    f"({host.describe()})")  # fmt: skip
    for controller in controllers:
        h = host.hierarchy_of(controller)
        if h is None or h.version != 2:
            where = f"bound to the v1 hierarchy at {h.mount}" if h else "not mounted"
            pytest.skip(f"the {controller} controller is {where} on this host, not in its "
                        f"cgroup2 hierarchy ({host.describe()})")  # fmt: skip
    return v2


def _unified(containers: ContainerFactory, values: dict[str, str]) -> Spec:
    spec = containers.spec(sh(WAIT_FOREVER))
    spec.oci_version = "1.0.2"  # unified arrived in 1.0.2
    return _with(spec, path=None, resources=Resources(unified=values))


@pytest.mark.spec("config-linux.unified.1", "config-linux.unified.apply-unified-values")
def test_unified_keys_get_their_controllers_enabled(containers: ContainerFactory) -> None:
    v2 = _v2_holding("pids")
    with containers.container(_unified(containers, {"pids.max": "42"})) as ctr:
        directory = v2.dir_of(ProcessCgroups(ctr.pid).path_in(v2))
        assert (directory / "pids.max").read_text().strip() == "42"
        enabled = (directory.parent / "cgroup.subtree_control").read_text().split()
        assert "pids" in enabled, f"{directory.parent}/cgroup.subtree_control: {enabled}"


@pytest.mark.spec("config-linux.unified.2", "config-linux.unified.apply-unified-values")
def test_unified_keys_without_a_typed_field_are_written(containers: ContainerFactory) -> None:
    v2 = _v2_holding("memory", "cpu")
    values = {"memory.high": str(96 * MiB), "cpu.weight.nice": "5"}
    with containers.container(_unified(containers, values)) as ctr:
        directory = v2.dir_of(ProcessCgroups(ctr.pid).path_in(v2))
        seen = {k: (directory / k).read_text().strip() for k in values}
        assert seen == values


@pytest.mark.spec("config-linux.unified.3", "runtime.create.9")
def test_a_unified_key_of_an_absent_controller_is_an_error(containers: ContainerFactory) -> None:
    host = layout()
    # The control: a key the host can take where it has a v2 pids controller; elsewhere no
    # unified key at all (a v1 host has nothing unified can be written to).
    pids = host.hierarchy_of("pids")
    good = {"pids.max": "42"} if pids is not None and pids.version == 2 else {}
    outcomes: dict[str, Call] = {}
    for name, values in (("control", good), ("absent", {**good, "nosuchctl.max": "1"})):
        spec = _unified(containers, values) if values else containers.spec(sh(WAIT_FOREVER))
        with containers.container(spec, create=False) as ctr:
            outcomes[name] = ctr.create(check=False)
            if name == "absent" and refused(outcomes[name]):
                # A create that succeeded is judged below; one that failed must leave nothing.
                try:
                    assert_nothing_created(containers, ctr.id, bundle=ctr.bundle)
                finally:
                    remove_leftovers(ctr.id, host)
    expect_success(outcomes["control"], f"create with unified {good}")
    expect_refusal(outcomes["absent"], "create with unified {'nosuchctl.max': '1'}")


@pytest.mark.spec("config-linux.unified.5", "runtime.create.9")
def test_a_v1_setting_with_no_v2_equivalent_is_an_error_on_v2(
    containers: ContainerFactory,
) -> None:
    host = layout()
    cpu = host.hierarchy_of("cpu")
    if cpu is None or cpu.version != 2:
        pytest.skip(f"the cpu controller is not in cgroup v2 on this host, so a realtime budget "
                    f"needs no conversion ({host.describe()})")  # fmt: skip
    outcomes = {}
    for name, resources in (
        ("control", Resources(cpu=CPU(shares=512))),
        ("realtime", Resources(cpu=CPU(shares=512, realtime_runtime=5000,
                                       realtime_period=1000000))),
    ):  # fmt: skip
        spec = _with(containers.spec(sh(WAIT_FOREVER)), path=None, resources=resources)
        with containers.container(spec, create=False) as ctr:
            outcomes[name] = ctr.create(check=False)
            if name == "realtime" and refused(outcomes[name]):
                # A create that succeeded is judged below; one that failed must leave nothing.
                try:
                    assert_nothing_created(containers, ctr.id, bundle=ctr.bundle)
                finally:
                    remove_leftovers(ctr.id, host)
    expect_success(outcomes["control"], "create with cpu.shares on cgroup v2")
    expect_refusal(outcomes["realtime"], "create with cpu.realtimeRuntime on cgroup v2")


# --- memory.checkBeforeUpdate (needs `update`, which runtime.md does not define) -------------


def _skip_without_update(ctr: Container) -> None:
    call = ctr.client.call("update", "--help", check=False)
    if call.returncode != 0:
        pytest.skip(f"{ctr.client.name} has no `update` verb (runtime.md defines none): "
                    "a new limit cannot be asked for")  # fmt: skip


# Holds 48 MiB the kernel cannot reclaim without swap: a file in the container's own tmpfs
# (/dev/shm), charged to its memory cgroup (cgroup-v1/memory.rst, "shmem").
_HOLD = "dd if=/dev/zero of=/dev/shm/hold bs=1M count=48 2>/dev/null; " + WAIT_FOREVER


@pytest.mark.spec("config-linux.memory.4")
def test_a_memory_limit_below_usage_is_refused_with_check_before_update(
    containers: ContainerFactory,
) -> None:
    limit = 128 * MiB
    memory = Memory(limit=limit, check_before_update=True)
    spec = _with(containers.spec(sh(_HOLD)), path=None, resources=Resources(memory=memory))
    spec.oci_version = "1.1.0"  # checkBeforeUpdate arrived in 1.1.0
    with containers.container(spec, start=True) as ctr:
        _skip_without_update(ctr)
        wait_ready(ctr)
        knob = ProcessCgroups(ctr.pid).knob(v1="memory.limit_in_bytes", v2="memory.max")
        usage = ProcessCgroups(ctr.pid).knob(v1="memory.usage_in_bytes", v2="memory.current")
        assert int(usage.read()) > 32 * MiB, f"the container holds only {usage.read()} bytes"
        # The control: a new limit above the usage is taken, and the host shows it.
        above = ctr.client.call("update", "--memory", str(112 * MiB), ctr.id, check=False)
        expect_success(above, "update --memory 112 MiB (above the usage)")
        assert knob.read() == str(112 * MiB)
        below = ctr.client.call("update", "--memory", str(16 * MiB), ctr.id, check=False)
        expect_refusal(below, f"update --memory 16 MiB with {usage.read()} bytes in use")
        assert knob.read() == str(112 * MiB), "the refused limit was written anyway"
        assert ctr.status == "running", "the container did not survive the refused update"


# --- cgroup ownership in a user namespace (cgroup v2 only) ------------------------------------

DELEGATE = Path("/sys/kernel/cgroup/delegate")
_MAPPED_ROOT = 100000


# The mapped root cannot write to the image (owned by the host's root, unmapped): the marker
# goes to the container's own /dev/shm, seen from the host through /proc/<pid>/root.
_USERNS_READY = "touch /dev/shm/ready; sleep 1000 & wait"


def _wait_userns_ready(ctr: Container) -> None:
    marker = Path(f"/proc/{ctr.pid}/root/dev/shm/ready")
    poll(lambda: True if marker.exists() else None, what=f"{marker} of container {ctr.id}",
         observed=ctr.describe_stderr)  # fmt: skip


def _traversable(containers: ContainerFactory, ctr: Container) -> None:
    """Lets the mapped root reach the bundle's rootfs: the session's directories are private to
    the host's root (mkdtemp, 0700), which a user namespace's root is not. Search permission
    only, on the suite's own directories, from the bundle up to the session's directory."""
    session = containers.base_dir.parent
    for d in (ctr.bundle.path, *ctr.bundle.path.parents):
        d.chmod(d.stat().st_mode | 0o111)
        if d == session:
            break


def _userns_spec(containers: ContainerFactory) -> Spec:
    spec = containers.spec(sh(_USERNS_READY))
    assert spec.linux is not None and spec.linux.namespaces is not None and spec.mounts
    spec.linux.namespaces += [Namespace(type="user"), Namespace(type="cgroup")]
    spec.linux.uid_mappings = [IDMapping(container_id=0, host_id=_MAPPED_ROOT, size=65536)]
    spec.linux.gid_mappings = [IDMapping(container_id=0, host_id=_MAPPED_ROOT, size=65536)]
    # A read-write cgroup mount from source "cgroup": the case in which the spec has the
    # runtime hand the container its cgroup (config-linux.md, cgroup ownership).
    spec.mounts = [m for m in spec.mounts if m.destination != "/sys/fs/cgroup"] + [
        Mount(destination="/sys/fs/cgroup", type="cgroup", source="cgroup",
              options=["nosuid", "noexec", "nodev", "relatime", "rw"]),
    ]  # fmt: skip
    return spec


def _skip_unless_v2_ownership() -> Hierarchy:
    host = layout()
    if host.mode != "unified":
        pytest.skip(f"cgroup ownership is a cgroup v2 matter and this host is {host.mode} "
                    f"({host.describe()}): runtimes must not chown v1 cgroups")  # fmt: skip
    assert host.v2 is not None
    return host.v2


@pytest.mark.spec("config-linux.cgroup-ownership.7", "config-linux.cgroup-ownership.8")
def test_absent_delegate_files_do_not_stop_the_container(containers: ContainerFactory) -> None:
    v2 = _skip_unless_v2_ownership()
    if not DELEGATE.is_file():
        pytest.skip(f"this kernel has no {DELEGATE}: the fallback list applies instead")
    listed = DELEGATE.read_text().split()
    with containers.container(_userns_spec(containers), create=False) as ctr:
        _traversable(containers, ctr)
        ctr.create()
        ctr.start()
        _wait_userns_ready(ctr)
        directory = v2.dir_of(ProcessCgroups(ctr.pid).path_in(v2))
        absent = [name for name in listed if not (directory / name).exists()]
        if not absent:
            pytest.skip(f"every file {DELEGATE} lists exists in {directory}: the case of a "
                        "missing one does not arise here")  # fmt: skip
        # It started (the ready marker) although some listed files are missing; and it is the
        # chown case: the listed files that exist belong to the mapped root.
        owners = {n: (directory / n).stat().st_uid for n in listed if (directory / n).exists()}
        assert directory.stat().st_uid == _MAPPED_ROOT, f"{directory} is not the container's"
        assert set(owners.values()) == {_MAPPED_ROOT}, owners


@pytest.mark.spec("config-linux.cgroup-ownership.9")
def test_without_the_delegate_file_the_three_core_files_are_chowned(
    containers: ContainerFactory,
) -> None:
    v2 = _skip_unless_v2_ownership()
    if DELEGATE.exists():
        pytest.skip(f"this kernel has {DELEGATE}: the fallback for kernels without it cannot "
                    "be observed here")  # fmt: skip
    with containers.container(_userns_spec(containers), create=False) as ctr:
        _traversable(containers, ctr)
        ctr.create()
        ctr.start()
        _wait_userns_ready(ctr)
        directory = v2.dir_of(ProcessCgroups(ctr.pid).path_in(v2))
        owners = {
            n: (directory / n).stat().st_uid
            for n in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
        }
        assert set(owners.values()) == {_MAPPED_ROOT}, owners
