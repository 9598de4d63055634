"""Lifecycle and state (runtime.md: State, Lifecycle, Operations).

The container's own writes are watched from the host through the overlay upper directory, so
"the user program has (not) run" is observed, not inferred from the runtime's answer; "running"
and "stopped" are checked against the kernel as well (the pid in state must name a live process
rooted in the bundle while it runs, and that same process, by pid and start time, must have
ended once state says stopped).

Every refusal sits next to its control in the same test: the same call on valid input
succeeds there, so a runtime that refuses everything cannot pass, and where the spec says a
refused call creates nothing, the host is searched for what it might have made.

Where runtimes dispute the spec (delete of a created container, start without process, the
forms of kill's signal), the test finds out which outcome the runtime took, checks that
outcome's facts on the host, and asks the ``dispute`` fixture whether the --spec-profile accepts
it (bulkhead.disputes, docs/profiles.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import example, given

from bulkhead import strategies
from bulkhead.containers import Container, ContainerFactory, poll
from bulkhead.disputes import Ask
from bulkhead.hostview import (
    ProcessRef,
    cgroup_dirs,
    cmdline,
    is_alive,
    namespace_id,
    signal_process,
)
from bulkhead.runtime import Call
from conformance._cgroups import ProcessCgroups, procs_of
from conformance._support import (
    WAIT_FOREVER,
    assert_ended,
    assert_nothing_created,
    assert_nothing_runs_in,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
    host_file,
    refused,
    sh,
    state_json,
    state_of,
    stoppable,
    validate_against,
    wait_ready,
    wait_stopped,
)


def running(ctr: Container, marker: str = "ready") -> ProcessRef:
    """Waits for the started program's marker and returns its process, seen from the host,
    while ``state`` says running."""
    wait_ready(ctr, marker)
    process = container_process(ctr)
    status = ctr.status
    assert status == "running", f"state says {status} while {process.describe()} runs"
    return process


def killed(ctr: Container, process: ProcessRef) -> None:
    """SIGKILL through the runtime, then stopped by state and by the host."""
    ctr.kill("KILL")
    wait_stopped(ctr, process)


@pytest.mark.spec(
    "runtime.lifecycle.4",
    "runtime.create.4",
    "runtime.create.6",
    "runtime.state.5",
    "runtime.state.8",
)
def test_create_gives_created_without_running_the_program(containers: ContainerFactory) -> None:
    args = sh(stoppable("ran"))
    with containers.container(containers.spec(args)) as ctr:
        assert ctr.status == "created"
        init = container_process(ctr)
        assert cmdline(init.pid) != list(args), "the created container already runs the program"
        assert not host_file(ctr, "/ran").exists(), "the user program ran during create"
        # Control: the marker is the program's witness; start makes it appear.
        ctr.start()
        wait_ready(ctr, "ran")


@pytest.mark.spec("runtime.start.4", "runtime.lifecycle.14", "runtime.state.5")
def test_start_runs_the_program_and_gives_running(containers: ContainerFactory) -> None:
    args = sh(stoppable())
    with containers.container(containers.spec(args)) as ctr:
        assert not host_file(ctr, "/ready").exists(), "the program ran before start"
        ctr.start()
        process = running(ctr)
        assert cmdline(process.pid) == list(args), "the pid in state does not run the program"


@pytest.mark.spec("runtime.state.5", "runtime.lifecycle.17")
def test_program_exit_gives_stopped(containers: ContainerFactory) -> None:
    # The program exits on its own, on a SIGTERM the host sends straight to it (the runtime's
    # kill is not involved): the host sees it run first, so "stopped" can be checked against
    # the process's end instead of a program that has ended before anyone looked.
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        process = running(ctr)
        assert signal_process(process, signal.SIGTERM), f"{process.describe()} is gone"
        wait_stopped(ctr, process)


@pytest.mark.spec("runtime.delete.4", "runtime.query-state.2", "runtime.lifecycle.18")
def test_delete_removes_the_container(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        killed(ctr, running(ctr))
        assert state_of(containers, ctr.id)["status"] == "stopped"  # state answers before
        ctr.delete()
        assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="delete")


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
    with containers.container(containers.spec(sh(stoppable()))) as ctr:
        process = container_process(ctr)
        if phase != "created":
            ctr.start()
            process = running(ctr)
        if phase == "stopped":
            killed(ctr, process)
        data = state_json(ctr.client.raw_state(ctr.id))
        validate_against("state-schema.json", data)
        assert data["id"] == ctr.id
        assert data["status"] == phase
        assert data["bundle"] == str(ctr.bundle.path), "bundle must be the absolute bundle path"
        assert os.path.isabs(data["bundle"])
        assert data["ociVersion"]


@pytest.mark.spec("runtime.query-state.2", "runtime.query-state.3")
def test_state_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as ctr:
        # Control: state of a container that exists answers, naming it.
        assert state_of(containers, ctr.id)["status"] == "created"
        unknown = containers.new_id()
        expect_refusal(containers.client.raw_state(unknown, check=False), "state of an unknown id")


@pytest.mark.spec("runtime.start.1", "runtime.start.3", "runtime.start.4")
def test_start_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable()))) as ctr:
        unknown = containers.new_id()
        call = containers.client.start(unknown, check=False)
        expect_refusal(call, "start of an unknown id")
        assert_nothing_created(containers, unknown, what="start of an unknown id")
        assert ctr.status == "created"
        # Control: start of a created container succeeds and runs its program.
        expect_success(ctr.start(check=False), "start of a created container")
        running(ctr)


@pytest.mark.spec("runtime.kill.1", "runtime.kill.3", "runtime.kill.4")
def test_kill_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        process = running(ctr)
        unknown = containers.new_id()
        expect_refusal(
            containers.client.kill(unknown, "KILL", check=False), "kill of an unknown id"
        )
        assert is_alive(process), "kill of an unknown id ended the running container"
        # Control: kill of a running container succeeds and stops it.
        expect_success(ctr.kill("KILL", check=False), "kill of a running container")
        wait_stopped(ctr, process)


@pytest.mark.spec("runtime.delete.1", "runtime.delete.3", "runtime.delete.4")
def test_delete_of_an_unknown_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        killed(ctr, running(ctr))
        unknown = containers.new_id()
        expect_refusal(containers.client.delete(unknown, check=False), "delete of an unknown id")
        assert state_of(containers, ctr.id)["status"] == "stopped"
        # Control: delete of a stopped container succeeds and removes it.
        expect_success(ctr.delete(check=False), "delete of a stopped container")
        assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="delete")


@pytest.mark.spec("runtime.state.3", "runtime.create.2", "runtime.create.3")
def test_create_with_a_duplicate_id_errors_and_keeps_the_first(
    containers: ContainerFactory,
) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as first:
        process = container_process(first)
        spec = containers.spec(sh(stoppable("second")))
        with containers.bundle(spec) as (cid, bundle):
            second = Container(cid, bundle, first.client)
            try:
                # Under the first container's id (the outer block force-deletes whatever holds
                # it, should the runtime have let this through).
                call = first.client.create(
                    first.id, bundle.path, pid_file=bundle.path / "pid", check=False
                )
                expect_refusal(call, "create under the id of a live container")
                state = first.state()
                assert (state.status, state.pid) == ("created", process.pid)
                assert state.bundle == str(first.bundle.path)
                assert is_alive(process), f"the first container's {process.describe()} ended"
                assert_nothing_runs_in(bundle)
                # Control: the second bundle is valid; under an id of its own it is created.
                expect_success(second.create(check=False), "create of the bundle under a new id")
                container_process(second)
            finally:
                second.close_stdio()


@pytest.mark.spec("runtime.start.2", "runtime.start.3")
def test_start_twice_errors_and_leaves_it_running(containers: ContainerFactory) -> None:
    script = stoppable(first="echo started >> /starts; ")
    with containers.container(containers.spec(sh(script)), start=True) as ctr:
        process = running(ctr)  # the control: the first start succeeded
        expect_refusal(ctr.start(check=False), "start of a running container")
        assert ctr.status == "running"
        assert container_process(ctr) == process, "start of a running container replaced it"
        assert host_file(ctr, "/starts").read_text() == "started\n", "the program ran again"


@pytest.mark.spec("runtime.start.2", "runtime.start.3")
def test_start_of_a_stopped_container_errors(containers: ContainerFactory) -> None:
    script = stoppable(first="echo once >> /runs; ")
    with containers.container(containers.spec(sh(script)), start=True) as ctr:
        killed(ctr, running(ctr))  # the control: the first start succeeded
        expect_refusal(ctr.start(check=False), "start of a stopped container")
        assert ctr.status == "stopped"
        assert_nothing_runs_in(ctr.bundle)
        assert host_file(ctr, "/runs").read_text() == "once\n", "the program ran again"


@pytest.mark.spec("runtime.delete.2", "runtime.delete.3")
def test_delete_of_a_running_container_without_force_errors(
    containers: ContainerFactory,
) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        process = running(ctr)
        expect_refusal(ctr.delete(check=False), "delete of a running container")
        assert (ctr.status, ctr.pid) == ("running", process.pid)
        assert is_alive(process), f"delete of a running container ended {process.describe()}"
        # Control: once the container is stopped, the same delete succeeds.
        killed(ctr, process)
        expect_success(ctr.delete(check=False), "delete of a stopped container")
        expect_refusal(ctr.client.raw_state(ctr.id, check=False), "state after delete")


@pytest.mark.spec("runtime.delete.2", "runtime.delete.3", "runtime.delete.4")
def test_delete_of_a_created_container_without_force_errors(
    containers: ContainerFactory, dispute: Ask
) -> None:
    ruling = dispute("delete-created")
    with containers.container(containers.spec(sh(stoppable()))) as ctr:
        process = container_process(ctr)
        assert ctr.status == "created"
        if refused(ctr.delete(check=False)):
            ruling.require("refused")
            assert ctr.status == "created"
            assert is_alive(process), f"delete of a created container ended {process.describe()}"
            # Control: once the container is stopped, the same delete succeeds.
            killed(ctr, process)
            expect_success(ctr.delete(check=False), "delete of a stopped container")
            return
        ruling.require("deleted")
        # runc's way, all of it: the init killed, then everything create made removed (state
        # answered for the container a moment ago: the probes would have seen it).
        assert_ended(process, "delete of the created container exited 0")
        assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="delete exiting 0")
        assert not host_file(ctr, "/ready").exists(), "the program ran"


@pytest.mark.spec("runtime.kill.2", "runtime.kill.3")
def test_kill_of_a_stopped_container_errors(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        process = running(ctr)
        # Control: the same kill of the running container succeeds.
        expect_success(ctr.kill("KILL", check=False), "kill of a running container")
        wait_stopped(ctr, process)
        expect_refusal(ctr.kill("KILL", check=False), "kill of a stopped container")
        assert ctr.status == "stopped"
        assert_nothing_runs_in(ctr.bundle)
        # It stays a container that can be deleted (runtime.kill.2: left unchanged).
        expect_success(ctr.delete(check=False), "delete of the stopped container")


@pytest.mark.spec("runtime.kill.4")
@pytest.mark.parametrize("signal_name", ["USR1", "TERM", "HUP"])
def test_kill_delivers_the_signal(containers: ContainerFactory, signal_name: str) -> None:
    script = f"trap 'echo {signal_name} > /got; exit 0' {signal_name}; {WAIT_FOREVER}"
    with containers.container(containers.spec(sh(script)), start=True) as ctr:
        process = running(ctr)
        ctr.kill(signal_name)
        wait_stopped(ctr, process)
        assert host_file(ctr, "/got").read_text() == f"{signal_name}\n"


@pytest.mark.spec("runtime.kill.4")
def test_kill_with_sigkill_stops_the_container(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        killed(ctr, running(ctr))


# The program records each of these signals by name when it gets it, then exits.
TRAPPED = ("USR1", "USR2", "TERM", "HUP", "INT")
# How long a signal the runtime reported sent may take to show in the program's record.
SIGNAL_WITHIN = 5.0


def _recorder() -> str:
    traps = "".join(f"trap 'echo {n} >> /got; exit 0' {n}; " for n in TRAPPED)
    return traps + WAIT_FOREVER


def _got(ctr: Container) -> str | None:
    path = host_file(ctr, "/got")
    # Empty: created by the shell's redirection, not yet written.
    return (path.read_text() or None) if path.exists() else None


def _kill_form(ctr: Container, form: str) -> tuple[Call, str | None]:
    """``kill ID FORM``, then what the program recorded: polled while kill said it sent one."""
    call = ctr.kill(form, check=False)
    if refused(call):
        return call, _got(ctr)
    try:
        got = poll(lambda: _got(ctr), timeout=SIGNAL_WITHIN, what=f"kill {form}'s signal")
    except TimeoutError:
        got = None
    return call, got


# runtime.md gives kill no command line; the suite passes the signal positionally (runc's,
# crun's and runtime-tools' form). The plain upper-case name is required under both profiles
# (test_kill_delivers_the_signal); these are the other forms runc takes.
@pytest.mark.spec("runtime.kill.4")
@pytest.mark.parametrize(
    "form", ["SIGUSR1", str(int(signal.SIGUSR1)), "usr1", "sigusr1"], ids=lambda f: f
)
def test_kill_takes_the_signal_in_runcs_other_forms(
    containers: ContainerFactory, dispute: Ask, form: str
) -> None:
    ruling = dispute("kill-signal-syntax")
    with containers.container(containers.spec(sh(_recorder())), start=True) as ctr:
        process = running(ctr)
        call, got = _kill_form(ctr, form)
        if refused(call):
            ruling.require("refused")
            assert got is None, f"kill {form} was refused, yet the program got {got!r}"
            assert is_alive(process), f"a refused kill {form} ended {process.describe()}"
            assert ctr.status == "running"
            # Control: the plain name is delivered, and is the only thing the program got.
            expect_success(ctr.kill("USR1", check=False), "kill with the plain name USR1")
            wait_stopped(ctr, process)
            assert _got(ctr) == "USR1\n"
            return
        if got is None:
            ruling.require("ignored")
        elif got != "USR1\n":
            ruling.require("wrong-signal")
        ruling.require("delivered")
        wait_stopped(ctr, process)
        assert _got(ctr) == "USR1\n", "more than the one signal arrived"


@pytest.mark.spec("runtime.kill.4")
@pytest.mark.parametrize("name", ["NOSUCHSIGNAL", "SIGNOSUCH"])
def test_kill_with_an_unknown_signal_errors_and_sends_nothing(
    containers: ContainerFactory, name: str
) -> None:
    # Not disputed: no signal of that name exists, so none can be "the specified signal", and
    # a kill that exits 0 claims to have sent it.
    with containers.container(containers.spec(sh(_recorder())), start=True) as ctr:
        process = running(ctr)
        expect_refusal(ctr.kill(name, check=False), f"kill with the unknown signal {name}")
        assert _got(ctr) is None, f"kill {name} delivered {_got(ctr)!r}"
        assert is_alive(process) and ctr.status == "running"
        # Control: a known name is delivered to the same program, and the probe sees it.
        expect_success(ctr.kill("USR2", check=False), "kill with the known name USR2")
        wait_stopped(ctr, process)
        assert _got(ctr) == "USR2\n"


@pytest.mark.spec("runtime.create.8", "runtime.create.9", "runtime.lifecycle.2")
def test_create_with_a_missing_root_errors_and_creates_nothing(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec(sh(stoppable()))
    spec.root.path = "no-such-rootfs"  # type: ignore[union-attr]
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            since = boot_seconds()
            expect_refusal(ctr.create(check=False), "create with a root.path that does not exist")
            assert_nothing_created(
                containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
            )
            # Control: the same bundle with its root fixed is created under the same id.
            config = bundle.read_config()
            config["root"] = {**config["root"], "path": "rootfs"}  # type: ignore[dict-item]
            bundle.write_config(config)
            expect_success(ctr.create(check=False), "create of the bundle with its root fixed")
            container_process(ctr)
        finally:
            ctr.close_stdio()


@pytest.mark.spec("runtime.create.1", "runtime.create.9")
def test_create_with_a_missing_bundle_errors(containers: ContainerFactory, tmp_path: Path) -> None:
    with containers.bundle(containers.spec(sh(stoppable()))) as (cid, bundle):
        since = boot_seconds()
        pid_file = tmp_path / "pid"
        call = containers.client.create(cid, tmp_path / "absent", pid_file=pid_file, check=False)
        expect_refusal(call, "create with a bundle directory that does not exist")
        assert_nothing_created(containers, cid, pid_file=pid_file, since=since)
        # Control: the same create with a bundle that exists succeeds.
        ctr = Container(cid, bundle, containers.client)
        try:
            expect_success(ctr.create(check=False), "create with the bundle")
            container_process(ctr)
        finally:
            ctr.close_stdio()


@pytest.mark.spec("runtime.delete.6", "runtime.start.4")
def test_an_id_can_be_reused_after_delete(containers: ContainerFactory) -> None:
    # Both lives share the bundle, so each start's program writes a marker of its own: the
    # first life's marker cannot stand in for the second's.
    with containers.container(containers.spec(sh(stoppable("life-1"))), start=True) as ctr:
        first = running(ctr, "life-1")
        killed(ctr, first)
        ctr.delete()
        expect_refusal(ctr.client.raw_state(ctr.id, check=False), "state after delete")
        config = ctr.bundle.read_config()
        config["process"]["args"] = list(sh(stoppable("life-2")))  # type: ignore[index]
        ctr.bundle.write_config(config)
        ctr.create()
        assert ctr.status == "created"
        second = container_process(ctr)
        assert second != first
        assert not host_file(ctr, "/life-2").exists(), "the program ran during create"
        ctr.start()
        running(ctr, "life-2")


@pytest.mark.spec("runtime.lifecycle.5")
def test_editing_config_after_create_has_no_effect(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh("echo original > /which"))) as ctr:
        ctr.bundle.write_config(containers.spec(sh("echo edited > /which")))
        ctr.start()
        ctr.wait_for("stopped")
        assert host_file(ctr, "/which").read_text() == "original\n"


@pytest.mark.spec("runtime.state.10")
@given(annotations=strategies.annotations())
# Both sides, whatever the draws: a runtime that drops annotations fails the first.
@example(annotations={"org.bulkhead.check": "kept"})
@example(annotations={})
def test_state_carries_the_configured_annotations(
    containers: ContainerFactory, annotations: dict[str, str]
) -> None:
    spec = containers.spec(["true"])
    spec.annotations = annotations or None
    with containers.container(spec) as ctr:
        data = state_json(ctr.client.raw_state(ctr.id))
        assert data.get("id") == ctr.id
        assert (data.get("annotations") or {}) == annotations


def _without_id(containers: ContainerFactory, verb: str, bundle: Path, pid_file: Path) -> Call:
    if verb != "create":
        return containers.client.call(verb, check=False, timeout=10)
    # A container made by a create that wrongly succeeds inherits the stdio: files, not pipes.
    with (bundle / "stdout").open("a") as out, (bundle / "stderr").open("a") as err:
        return containers.client.call(
            "create", "--bundle", str(bundle), "--pid-file", str(pid_file),
            check=False, timeout=10, stdout=out, stderr=err,
        )  # fmt: skip


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
    # A real bundle with a valid config and, for the verbs that act on one, a container in the
    # status where the same call with its id succeeds (the control, at the end): the call
    # without an id can then fail only for the missing id.
    with containers.bundle(containers.spec(sh(stoppable()))) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            process: ProcessRef | None = None
            if verb != "create":
                ctr.create()
                process = container_process(ctr)
            if verb in ("kill", "delete"):
                ctr.start()
                process = running(ctr)
                if verb == "delete":
                    killed(ctr, process)
            status = None if verb == "create" else ctr.status
            before = sorted(os.listdir(containers.client.root))
            since = boot_seconds()
            call = _without_id(containers, verb, bundle.path, bundle.path / "pid")
            expect_refusal(call, f"{verb} without a container id")
            if verb == "create":
                assert_nothing_created(
                    containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
                )
                assert sorted(os.listdir(containers.client.root)) == before, "a state was left"
            else:
                assert ctr.status == status, f"{verb} without an id changed the container"
                if process is not None and status != "stopped":
                    assert is_alive(process), f"{verb} without an id ended the container"
                assert not (verb == "start" and host_file(ctr, "/ready").exists())
            # Control: the same call with the id succeeds, and does what it should.
            if verb == "state":
                assert state_of(containers, cid)["status"] == "created"
            elif verb == "start":
                expect_success(ctr.start(check=False), "start with the id")
                running(ctr)
            elif verb == "kill":
                expect_success(ctr.kill("KILL", check=False), "kill with the id")
                assert process is not None
                wait_stopped(ctr, process)
            elif verb == "delete":
                expect_success(ctr.delete(check=False), "delete with the id")
                assert_nothing_created(containers, cid, bundle=bundle, what="delete")
            else:
                expect_success(ctr.create(check=False), "create with the id")
                container_process(ctr)
        finally:
            ctr.close_stdio()


@pytest.mark.spec("runtime.start.5", "runtime.create.10", "runtime.create.9")
def test_a_config_without_process_cannot_be_started(
    containers: ContainerFactory, dispute: Ask
) -> None:
    ruling = dispute("start-without-process")
    spec = containers.spec(sh(stoppable()))
    spec.process = None
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            since = boot_seconds()
            if refused(ctr.create(check=False)):
                # Validating early is allowed (runtime.create.10); then nothing may be left.
                ruling.require("refused-at-create")
                assert_nothing_created(
                    containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
                )
            else:
                init = container_process(ctr)
                if not refused(ctr.start(check=False)):
                    ruling.require("started-nothing")
                ruling.require("refused-at-start")
                assert not host_file(ctr, "/ready").exists(), "something ran without process"
                # runtime.md Errors: the refused start left the container as it was.
                assert ctr.status == "created" and is_alive(init), "the refused start changed it"
                ctr.delete(force=True)
            # Control: the same bundle with a process is created and started.
            config = bundle.read_config()
            config["process"] = containers.spec(sh(stoppable())).to_json_dict()["process"]
            bundle.write_config(config)
            ctr.create()
            ctr.start()
            running(ctr)
        finally:
            ctr.close_stdio()


# --- a foreground run ------------------------------------------------------------------------


@pytest.mark.spec("runtime.lifecycle.1")
def test_a_foreground_run_keeps_its_own_processes_out_of_the_container(
    containers: ContainerFactory,
) -> None:
    """runc's ``run`` waits in the foreground and exits with the program's status. Whatever
    process the runtime keeps for that (itself, a stage of its own) is not part of the
    environment config.json describes: every cgroup the container was given holds only
    processes of its pid namespace, so its pids limit, ``kill --all`` and ``ps`` see the
    container alone. The init must be found there (the control: the probe sees what is in the
    cgroup)."""
    with containers.bundle(containers.spec(sh("touch /ready; " + WAIT_FOREVER))) as (cid, bundle):
        argv = containers.client.argv("run", "--bundle", str(bundle.path), cid)
        quiet = subprocess.DEVNULL
        run = subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
        try:
            poll(lambda: True if (bundle.upper / "ready").exists() else None, timeout=10.0,
                 what=f"/ready written by container {cid}")  # fmt: skip
            init = int(state_of(containers, cid)["pid"])
            pid_ns = namespace_id(init, "pid")
            own = ProcessCgroups(os.getpid()).dirs()
            placed = {m: d for m, d in ProcessCgroups(init).dirs().items() if d != own[m]}
            assert placed, f"the init {init} is in no cgroup of its own: {own}"
            for _ in range(3):  # a while, not a moment: a helper may be placed late
                for directory in placed.values():
                    procs = procs_of(directory)
                    assert init in procs, f"the init {init} is not in {directory}/cgroup.procs"
                    strangers = [p for p in procs if _pid_ns_of(p) not in (pid_ns, None)]
                    assert not strangers, (
                        f"{directory} holds processes outside the container's pid namespace "
                        f"while `run` waits: {[(p, cmdline(p)) for p in strangers]} (the "
                        f"runtime is pid {run.pid})"
                    )
                time.sleep(0.1)
            containers.client.kill(cid, "KILL")
            code = run.wait(timeout=10)
        finally:
            if run.poll() is None:
                containers.client.delete(cid, force=True, check=False, cleanup=True)
                run.wait(timeout=10)
            assert run.stderr is not None
            err = run.stderr.read()
            run.stderr.close()
    assert code == 128 + 9, f"a foreground run whose program was SIGKILLed exited {code}: {err}"


def _pid_ns_of(pid: int) -> str | None:
    try:
        return namespace_id(pid, "pid")
    except OSError:
        return None  # gone since cgroup.procs was read
