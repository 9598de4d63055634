"""Lifecycle and state (runtime.md: State, Lifecycle, Operations).

The container's own writes are watched from the host through the overlay upper directory, so
"the user program has (not) run" is observed, not inferred from the runtime's answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from bulkhead.hostview import cgroup_dirs
from conformance._support import (
    WAIT_FOREVER,
    host_file,
    refused,
    sh,
    state_json,
    validate_against,
    wait_ready,
)


@pytest.mark.spec(
    "runtime.lifecycle.4",
    "runtime.create.4",
    "runtime.create.6",
    "runtime.state.5",
    "runtime.state.8",
)
def test_create_gives_created_without_running_the_program(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh("touch /ran; " + WAIT_FOREVER))) as ctr:
        state = ctr.state()
        assert state.status == "created"
        assert state.pid and state.pid > 0, "state of a created container must carry its pid"
        assert os.path.exists(f"/proc/{state.pid}"), "the pid in state is not a live process"
        assert not host_file(ctr, "/ran").exists(), "the user program ran during create"


@pytest.mark.spec("runtime.start.4", "runtime.lifecycle.14", "runtime.state.5")
def test_start_runs_the_program_and_gives_running(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as ctr:
        ctr.start()
        wait_ready(ctr)
        assert ctr.status == "running"


@pytest.mark.spec("runtime.state.5", "runtime.lifecycle.17")
def test_program_exit_gives_stopped(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(["true"]), start=True) as ctr:
        ctr.wait_for("stopped")


@pytest.mark.spec("runtime.delete.4", "runtime.query-state.2")
def test_delete_removes_the_container(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(["true"]), start=True) as ctr:
        ctr.wait_for("stopped")
        ctr.delete()
        assert refused(ctr.client.raw_state(ctr.id, check=False)), "state works after delete"


@pytest.mark.spec("runtime.delete.4", "runtime.lifecycle.18")
@pytest.mark.requires("root")
def test_delete_removes_the_cgroups_create_made(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(["true"])) as ctr:
        made = cgroup_dirs(ctr.id)
        assert made, f"create made no cgroup named {ctr.id} (cgroupsPath /{ctr.id})"
        ctr.delete(force=True)
        left = [d for d in made if d.exists()]
        assert not left, f"cgroups left after delete: {left}"


@pytest.mark.spec(
    "runtime.state.12",
    "runtime.query-state.3",
    "runtime.state.1",
    "runtime.state.2",
    "runtime.state.9",
)
@pytest.mark.parametrize("phase", ["created", "running", "stopped"])
def test_state_output_validates_against_the_schema(
    containers: ContainerFactory, phase: str
) -> None:
    script = "true" if phase == "stopped" else WAIT_FOREVER
    with containers.container(containers.spec(sh(script))) as ctr:
        if phase != "created":
            ctr.start()
            ctr.wait_for(phase)
        data = state_json(ctr.client.raw_state(ctr.id))
        validate_against("state-schema.json", data)
        assert data["id"] == ctr.id
        assert data["status"] == phase
        assert data["bundle"] == str(ctr.bundle.path), "bundle must be the absolute bundle path"
        assert os.path.isabs(data["bundle"])
        assert data["ociVersion"]


@pytest.mark.spec("runtime.query-state.2")
def test_state_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    assert refused(containers.client.raw_state(containers.new_id(), check=False))


@pytest.mark.spec("runtime.start.1", "runtime.start.3")
def test_start_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    assert refused(containers.client.start(containers.new_id(), check=False))


@pytest.mark.spec("runtime.kill.1", "runtime.kill.3")
def test_kill_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    assert refused(containers.client.kill(containers.new_id(), "KILL", check=False))


@pytest.mark.spec("runtime.delete.1", "runtime.delete.3")
def test_delete_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    assert refused(containers.client.delete(containers.new_id(), check=False))


@pytest.mark.spec("runtime.state.3", "runtime.create.2", "runtime.create.3")
def test_create_with_a_duplicate_id_errors_and_keeps_the_first(
    containers: ContainerFactory,
) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as first:
        pid = first.pid
        with containers.bundle(containers.spec(["true"]), cid=first.id) as (_, second):
            # Checked inside: leaving this block force-deletes whatever holds the id.
            call = first.client.create(first.id, second.path, check=False)
            assert refused(call), "a second container was created under an id in use"
            state = first.state()
            assert (state.status, state.pid) == ("created", pid)
            assert state.bundle == str(first.bundle.path)


@pytest.mark.spec("runtime.start.2", "runtime.start.3")
def test_start_twice_errors_and_leaves_it_running(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        pid = ctr.pid
        assert refused(ctr.start(check=False)), "start of a running container succeeded"
        assert (ctr.status, ctr.pid) == ("running", pid)


@pytest.mark.spec("runtime.start.2", "runtime.start.3")
def test_start_of_a_stopped_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh("echo once >> /runs")), start=True) as ctr:
        ctr.wait_for("stopped")
        assert refused(ctr.start(check=False))
        assert ctr.status == "stopped"
        assert host_file(ctr, "/runs").read_text() == "once\n", "the program ran again"


@pytest.mark.spec("runtime.delete.2", "runtime.delete.3")
def test_delete_of_a_running_container_without_force_errors(
    containers: ContainerFactory,
) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        pid = ctr.pid
        assert refused(ctr.delete(check=False)), "a running container was deleted"
        assert (ctr.status, ctr.pid) == ("running", pid)
        assert os.path.exists(f"/proc/{pid}")


@pytest.mark.spec("runtime.delete.2", "runtime.delete.3")
def test_delete_of_a_created_container_without_force_errors(
    containers: ContainerFactory,
) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as ctr:
        assert refused(ctr.delete(check=False)), "a created (not stopped) container was deleted"
        assert ctr.status == "created"


@pytest.mark.spec("runtime.kill.2", "runtime.kill.3")
def test_kill_of_a_stopped_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(["true"]), start=True) as ctr:
        ctr.wait_for("stopped")
        assert refused(ctr.kill("KILL", check=False)), "kill of a stopped container succeeded"
        assert ctr.status == "stopped"


@pytest.mark.spec("runtime.kill.4")
@pytest.mark.parametrize("signal", ["USR1", "TERM", "HUP"])
def test_kill_delivers_the_signal(containers: ContainerFactory, signal: str) -> None:
    script = f"trap 'echo {signal} > /got; exit 0' {signal}; {WAIT_FOREVER}"
    with containers.container(containers.spec(sh(script)), start=True) as ctr:
        wait_ready(ctr)
        ctr.kill(signal)
        ctr.wait_for("stopped")
        assert host_file(ctr, "/got").read_text() == f"{signal}\n"


@pytest.mark.spec("runtime.kill.4")
def test_kill_with_sigkill_stops_the_container(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        ctr.kill("KILL")
        ctr.wait_for("stopped")


@pytest.mark.spec("runtime.create.8", "runtime.create.9", "runtime.lifecycle.2")
def test_create_with_a_missing_root_errors_and_creates_nothing(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec(["true"])
    spec.root.path = "no-such-rootfs"  # type: ignore[union-attr]
    with containers.bundle(spec) as (cid, bundle):
        call = containers.client.create(cid, bundle.path, check=False)
        assert refused(call), "create succeeded with a root.path that does not exist"
        assert refused(containers.client.raw_state(cid, check=False)), "a container was left"


@pytest.mark.spec("runtime.create.1")
def test_create_with_a_missing_bundle_errors(containers: ContainerFactory, tmp_path: Path) -> None:
    cid = containers.new_id()
    assert refused(containers.client.create(cid, tmp_path / "absent", check=False))
    assert refused(containers.client.raw_state(cid, check=False)), "a container was left"


@pytest.mark.spec("runtime.delete.6")
def test_an_id_can_be_reused_after_delete(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(["true"]), start=True) as ctr:
        ctr.wait_for("stopped")
        ctr.delete()
        ctr.create()
        assert ctr.status == "created"


@pytest.mark.spec("runtime.lifecycle.5")
def test_editing_config_after_create_has_no_effect(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh("echo original > /which"))) as ctr:
        ctr.bundle.write_config(containers.spec(sh("echo edited > /which")))
        ctr.start()
        ctr.wait_for("stopped")
        assert host_file(ctr, "/which").read_text() == "original\n"


@pytest.mark.spec("runtime.state.10")
@given(annotations=strategies.annotations())
def test_state_carries_the_configured_annotations(
    containers: ContainerFactory, annotations: dict[str, str]
) -> None:
    spec = containers.spec(["true"])
    spec.annotations = annotations or None
    with containers.container(spec) as ctr:
        data = state_json(ctr.client.raw_state(ctr.id))
        assert (data.get("annotations") or {}) == annotations


@pytest.mark.spec(
    "runtime.query-state.1",
    "runtime.start.1",
    "runtime.kill.1",
    "runtime.delete.1",
    "runtime.create.1",
)
@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "create"])
def test_an_operation_without_a_container_id_errors(
    containers: ContainerFactory, verb: str
) -> None:
    args = ["--bundle", str(containers.image.path)] if verb == "create" else []
    call = containers.client.call(verb, *args, check=False, timeout=10)
    assert refused(call), f"{verb} without a container id succeeded"


@pytest.mark.spec("runtime.start.5", "runtime.create.10", "runtime.create.9")
def test_a_config_without_process_cannot_be_started(containers: ContainerFactory) -> None:
    spec = containers.spec(["true"])
    spec.process = None
    with containers.bundle(spec) as (cid, bundle):
        created = containers.client.create(cid, bundle.path, check=False)
        if refused(created):
            # Validating early is allowed (runtime.create.10); then nothing may be left.
            assert refused(containers.client.raw_state(cid, check=False))
        else:
            assert refused(containers.client.start(cid, check=False)), "started without process"
