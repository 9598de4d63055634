"""The operations as a whole (runtime.md: Scope of a Container, State, Lifecycle, Errors,
Warnings, Operations, Create, Delete; config.md: Annotations, Extensibility; config-linux.md:
Namespaces).

Where test_lifecycle.py checks each verb's own rules, these tests check what holds across them:
the five operations work end to end for whoever created the container, ``create`` has built the
whole environment before ``start`` (seen from the host on the waiting init: its namespaces,
hostname, mounts, masked and read-only paths, cgroup limit and sysctl), a late failure leaves
nothing behind, ``delete`` leaves what the container did not make, and what a runtime does not
know (annotations, properties) changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.hostview import cgroup_paths
from bulkhead.sandbox import sandbox_netns
from bulkhead.spec import Mount, Namespace, Pids, Resources, Spec
from conformance._mounts import host_mounts, parse_mountinfo, top_mount
from conformance._namespaces import HOST, namespaces_of
from conformance._support import (
    assert_nothing_created,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
    host_file,
    sh,
    state_json,
    state_of,
    stoppable,
    wait_ready,
    wait_stopped,
)

STANDARD_STATUSES = ("creating", "created", "running", "stopped")


def status_of(containers: ContainerFactory, cid: str) -> str:
    """``state``'s status: a string, and one of the standard values at the standard points."""
    status = state_of(containers, cid).get("status")
    assert isinstance(status, str), f"state of {cid} carries status {status!r}, not a string"
    return status


@contextlib.contextmanager
def bundled(containers: ContainerFactory, spec: Spec | dict[str, Any]) -> Iterator[Container]:
    """A bundle and a Container on it, not yet created."""
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            yield ctr
        finally:
            ctr.close_stdio()


# --- the operations -------------------------------------------------------------------------


@pytest.mark.spec(
    "runtime.operations.1",
    "runtime.scope-of-a-container.1",
    "runtime.state.4",
    "runtime.state.7",
)
def test_the_creator_runs_a_container_through_all_five_operations(
    containers: ContainerFactory,
) -> None:
    with bundled(containers, containers.spec(sh(stoppable()))) as ctr:
        expect_success(ctr.create(check=False), "create")
        container_process(ctr)  # the init is there, rooted in the bundle
        assert status_of(containers, ctr.id) == "created"
        expect_success(ctr.start(check=False), "start of the created container")
        wait_ready(ctr)
        process = container_process(ctr)
        assert status_of(containers, ctr.id) == "running"
        expect_success(ctr.kill("TERM", check=False), "kill of the running container")
        wait_stopped(ctr, process)
        assert status_of(containers, ctr.id) == "stopped"
        expect_success(ctr.delete(check=False), "delete of the stopped container")
        assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="delete")


# --- create builds everything before start ----------------------------------------------------

CREATED_HOSTNAME = "bh-created"
PIDS_LIMIT = 77
TTL = "61"  # net.ipv4.ip_default_ttl: per network namespace; the kernel's default is 64


def _nsenter(pid: int, flag: str, *argv: str) -> str:
    done = subprocess.run(["nsenter", "-t", str(pid), flag, "--", *argv],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, f"nsenter -t {pid} {flag} {argv}: {done.stderr}"
    return done.stdout.strip()


def _pids_max(pid: int) -> str | None:
    """pids.max of the process's cgroup, from /proc/<pid>/cgroup (cgroups(7)): the v1 pids
    hierarchy, or the v2 one where the controller is there."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip()
        if controllers == "":
            unified = Path(f"/sys/fs/cgroup/unified{path}/pids.max")
            if unified.exists():
                return unified.read_text().strip()
    return None


@pytest.mark.spec("runtime.create.5", "runtime.lifecycle.1", "runtime.lifecycle.3")
@pytest.mark.requires("root", "controller:pids")
def test_create_has_applied_the_whole_config_before_start(containers: ContainerFactory) -> None:
    host_ttl = Path("/proc/sys/net/ipv4/ip_default_ttl").read_text().strip()
    assert host_ttl != TTL, "the host already has the TTL the container is to get"
    spec = containers.spec(sh(stoppable("ran")), hostname=CREATED_HOSTNAME)
    assert spec.mounts is not None and spec.linux is not None
    spec.mounts.append(Mount(destination="/srv/created", type="tmpfs", source="tmpfs",
                             options=["size=64k", "nosuid"]))  # fmt: skip
    spec.linux.sysctl = {"net.ipv4.ip_default_ttl": TTL}
    spec.linux.resources = Resources(devices=spec.linux.resources.devices if spec.linux.resources
                                     else None, pids=Pids(limit=PIDS_LIMIT))  # fmt: skip
    with bundled(containers, spec) as ctr:
        ctr.create()
        init = container_process(ctr)
        pid = init.pid
        assert status_of(containers, ctr.id) == "created"
        # Every namespace listed is a new one, already entered by the waiting init.
        own, host = namespaces_of(pid), namespaces_of(HOST)
        shared = [
            ns.type for ns in spec.linux.namespaces or [] if own.get(ns.type) == host[ns.type]
        ]
        assert not shared, f"the created init shares the host's {shared} namespaces"
        assert _nsenter(pid, "-u", "hostname") == CREATED_HOSTNAME
        assert _nsenter(pid, "-n", "cat", "/proc/sys/net/ipv4/ip_default_ttl") == TTL
        assert _pids_max(pid) == str(PIDS_LIMIT), "the cgroup limit is not in place"
        mounts = parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())
        created = top_mount(mounts, "/srv/created")
        assert created is not None and created.fstype == "tmpfs", f"/srv/created: {created}"
        # Masked paths that exist here (the kernel decides which /proc files there are).
        masked = [p for p in spec.linux.masked_paths or [] if os.path.exists(p)]
        assert masked, "none of the masked paths exists on this host"
        unmasked = [p for p in masked if top_mount(mounts, p) is None]
        assert not unmasked, f"masked paths with no mount over them yet: {unmasked}"
        sys_ = top_mount(mounts, "/proc/sys")
        assert sys_ is not None and sys_.readonly, f"/proc/sys is not read-only yet: {sys_}"
        root = top_mount(mounts, "/")
        assert root is not None and Path(f"/proc/{pid}/root/bin/busybox").exists()
        # ... and the program itself has not run: start runs it.
        assert not host_file(ctr, "/ran").exists(), "the program ran during create"
        ctr.start()
        wait_ready(ctr, "ran")


# --- errors and warnings -------------------------------------------------------------------


def _bundle_mounts(ctr: Container) -> list[str]:
    """Host mounts under the bundle other than its own overlay root."""
    base = str(ctr.bundle.path)
    return [m.point for m in host_mounts()
            if m.point.startswith(base) and m.point != str(ctr.bundle.rootfs)]  # fmt: skip


@pytest.mark.spec("runtime.errors.1")
def test_a_late_failure_leaves_nothing_and_the_id_can_be_used(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec(sh(stoppable()))
    missing = containers.base_dir / f"{containers.new_id()}-absent"
    assert spec.mounts is not None
    # A bind source that does not exist: found only when the runtime mounts it, after the
    # cgroup, the namespaces and the init exist.
    spec.mounts.append(Mount(destination="/srv/bound", type="bind", source=str(missing),
                             options=["rbind"]))  # fmt: skip
    with bundled(containers, spec) as ctr:
        before = sorted(os.listdir(containers.client.root))
        since = boot_seconds()
        expect_refusal(ctr.create(check=False), "create with a bind source that does not exist")
        assert_nothing_created(
            containers, ctr.id, bundle=ctr.bundle, pid_file=ctr.bundle.path / "pid", since=since
        )
        assert sorted(os.listdir(containers.client.root)) == before, "a state entry was left"
        assert not _bundle_mounts(ctr), f"mounts left: {_bundle_mounts(ctr)}"
        # The id is free: the same bundle with the source in place is created under it.
        missing.mkdir()
        try:
            expect_success(ctr.create(check=False), "create once the source exists")
            container_process(ctr)
            assert status_of(containers, ctr.id) == "created"
        finally:
            ctr.delete(force=True, check=False)
            missing.rmdir()


@pytest.mark.spec("runtime.warnings.1")
def test_a_warning_leaves_create_and_start_to_go_on(containers: ContainerFactory) -> None:
    # config.md "Linux Process": a capability that cannot be mapped to the kernel is logged as
    # a warning; the runtime goes on as though nothing had been said.
    spec = containers.spec(sh(stoppable()))
    assert spec.process is not None and spec.process.capabilities is not None
    caps = spec.process.capabilities
    caps.bounding = [*(caps.bounding or []), "CAP_BULKHEAD_UNKNOWN"]
    with bundled(containers, spec) as ctr:
        expect_success(ctr.create(check=False), "create with an unknown capability")
        expect_success(ctr.start(check=False), "start with an unknown capability")
        wait_ready(ctr)
        assert status_of(containers, ctr.id) == "running"


# --- what the runtime does not know ----------------------------------------------------------


@pytest.mark.spec("config.annotations.27", "runtime.state.10")
def test_unknown_annotations_are_ignored_and_kept(containers: ContainerFactory) -> None:
    annotations = {"com.example.unknown": "value", "org.bulkhead.never-defined": ""}
    spec = containers.spec(sh(stoppable()))
    spec.annotations = annotations
    with bundled(containers, spec) as ctr:
        expect_success(ctr.create(check=False), "create with unknown annotations")
        assert (state_json(ctr.client.raw_state(ctr.id)).get("annotations") or {}) == annotations
        expect_success(ctr.start(check=False), "start with unknown annotations")
        wait_ready(ctr)


@pytest.mark.spec("config.extensibility.2")
def test_unknown_properties_are_ignored(containers: ContainerFactory) -> None:
    config = containers.spec(sh(stoppable())).to_json_dict()
    config["com.example.unknownTop"] = {"nested": [1, 2, {"x": None}]}
    config["process"]["com.example.unknownProcess"] = "value"
    config["linux"]["com.example.unknownLinux"] = [True, 3.5]
    config["root"]["com.example.unknownRoot"] = 0
    with bundled(containers, config) as ctr:
        expect_success(ctr.create(check=False), "create with unknown properties")
        expect_success(ctr.start(check=False), "start with unknown properties")
        wait_ready(ctr)


# --- namespace paths of the wrong kind -----------------------------------------------------


@contextlib.contextmanager
def own_netns(containers: ContainerFactory) -> Iterator[Path]:
    containers.base_dir.mkdir(parents=True, exist_ok=True)
    with sandbox_netns(containers.base_dir / f"{containers.new_id()}-netns") as ns:
        yield ns.path


def joining(spec: Spec, kind: str, path: str) -> Spec:
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces = [ns for ns in spec.linux.namespaces if ns.type != kind]
    spec.linux.namespaces.append(Namespace(type=kind, path=path))
    return spec


@pytest.mark.spec("config-linux.namespaces.5", "runtime.create.9")
@pytest.mark.parametrize("wrong", ["another-type", "regular-file"])
def test_a_namespace_path_of_the_wrong_kind_makes_create_fail(
    containers: ContainerFactory, wrong: str
) -> None:
    with own_netns(containers) as netns:
        plain = containers.base_dir / f"{containers.new_id()}-file"
        plain.write_text("not a namespace\n")
        try:
            # A network namespace named as an ipc one (a namespace of the test's own, so a
            # runtime joining it anyway harms nothing), or a plain file named as a network one.
            kind, path = ("ipc", netns) if wrong == "another-type" else ("network", plain)
            spec = joining(containers.spec(sh(stoppable())), kind, str(path))
            with bundled(containers, spec) as ctr:
                since = boot_seconds()
                expect_refusal(ctr.create(check=False), f"create joining {path} as {kind}")
                assert_nothing_created(containers, ctr.id, bundle=ctr.bundle,
                                       pid_file=ctr.bundle.path / "pid", since=since)  # fmt: skip
            # Control: the right type for the same namespace is joined.
            spec = joining(containers.spec(sh(stoppable())), "network", str(netns))
            with bundled(containers, spec) as ctr:
                expect_success(ctr.create(check=False), f"create joining {netns} as network")
                pid = container_process(ctr).pid
                assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns).st_ino
        finally:
            plain.unlink()


# --- delete leaves what the container did not create ------------------------------------------


def _cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy's mount point on the host (v1 controllers and the cgroup2 one)."""
    return sorted({Path(m.point) for m in host_mounts() if m.fstype in ("cgroup", "cgroup2")})


@pytest.mark.spec("runtime.delete.5")
@pytest.mark.requires("root")
def test_delete_leaves_what_the_container_was_given(containers: ContainerFactory) -> None:
    parent = containers.new_id()  # carries the session token: the sentinel would find it
    made = []
    source = containers.base_dir / f"{parent}-src"
    source.mkdir(parents=True)
    (source / "kept").write_text("host file\n")
    try:
        for mount in _cgroup_mounts():
            (mount / parent).mkdir()
            made.append(mount / parent)
        with own_netns(containers) as netns:
            netns_inode = os.stat(netns).st_ino
            spec = joining(containers.spec(sh(stoppable())), "network", str(netns))
            assert spec.linux is not None and spec.mounts is not None
            spec.mounts.append(Mount(destination="/srv/given", type="bind", source=str(source),
                                     options=["rbind"]))  # fmt: skip
            with bundled(containers, spec) as ctr:
                spec.linux.cgroups_path = f"/{parent}/{ctr.id}"
                ctr.bundle.write_config(spec)
                ctr.create()
                ctr.start()
                wait_ready(ctr)
                process = container_process(ctr)
                # Controls: the container is in all three while it runs.
                assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == netns_inode
                assert any(f"/{parent}/{ctr.id}" in line for line in cgroup_paths(process.pid))
                assert Path(f"/proc/{process.pid}/root/srv/given/kept").exists()
                ctr.kill("KILL")
                wait_stopped(ctr, process)
                expect_success(ctr.delete(check=False), "delete of the stopped container")
                gone = [str(p) for p in made if not p.is_dir()]
                assert not gone, f"delete removed the cgroup parents it did not make: {gone}"
                assert (source / "kept").read_text() == "host file\n", "the bind source changed"
                assert os.stat(netns).st_ino == netns_inode, "the joined namespace was removed"
                assert top_mount(host_mounts(), str(netns)) is not None, "its mount is gone"
    finally:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        (source / "kept").unlink(missing_ok=True)
        source.rmdir()
