"""The lifecycle as a state machine (runtime.md: Lifecycle, Operations).

Hypothesis drives random sequences of create, start, kill, delete and delete --force against one
container id and checks after every step that the runtime's answer (success or refusal) and the
status it reports match a model of the spec's lifecycle. Deleting a `created` container without
--force is disputed (runc and crun delete it; bulkhead.disputes "delete-created"): under the
strict profile the model leaves it to test_lifecycle.py, under runc-compatible it takes it and
accepts either outcome, each checked to the end (refused: still created, the init alive;
deleted: absent, the init ended).

The id and its bundle are reused from one life of the container to the next, so each create
writes a config whose program touches a marker unique to that life: a marker the previous life
left in the bundle cannot pass for the new program having run. The container's process, by pid
and start time, is recorded from the host while it exists and must have ended once the model
says stopped or absent: a status is never taken from `state` alone.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import settings, stateful
from hypothesis import strategies as st

from bulkhead.containers import Container, ContainerFactory
from bulkhead.disputes import Ask, Ruling
from bulkhead.hostview import ProcessRef, is_alive
from conformance._support import (
    assert_ended,
    container_process,
    host_file,
    refused,
    sh,
    stoppable,
    wait_ready,
    wait_stopped,
)

# What each verb may do from each status; None means "the runtime must refuse".
ABSENT = "absent"


class Lifecycle(stateful.RuleBasedStateMachine):
    factory: ContainerFactory  # set by the test before running the machine
    deleting_created: Ruling  # the profile's word on delete of a created container

    def __init__(self) -> None:
        super().__init__()
        self.stack = contextlib.ExitStack()
        cid, bundle = self.stack.enter_context(self.factory.bundle(self.factory.spec(["true"])))
        self.ctr = Container(cid, bundle, self.factory.client)
        self.status = ABSENT
        self.lives = itertools.count(1)
        self.marker = ""
        # The container's process while one exists (the created init, then the program), and
        # every process an earlier life had: none of those may be alive any more.
        self.process: ProcessRef | None = None
        self.ended: list[ProcessRef] = []

    def expect(self, ok: bool, call_refused: bool, verb: str) -> None:
        if ok:
            assert not call_refused, f"{verb} was refused in status {self.status}"
        else:
            assert call_refused, f"{verb} succeeded in status {self.status}"

    def _ended(self) -> None:
        if self.process is not None:
            self.ended.append(self.process)
            self.process = None

    @stateful.rule()
    def create(self) -> None:
        ok = self.status == ABSENT
        if ok:
            # A config of this life's own, written before create (editing it afterwards would
            # have no effect, runtime.lifecycle.5).
            self.marker = f"life-{next(self.lives)}"
            config = self.ctr.bundle.read_config()
            config["process"]["args"] = list(sh(stoppable(self.marker)))  # type: ignore[index]
            self.ctr.bundle.write_config(config)
        self.expect(ok, refused(self.ctr.create(check=False)), "create")
        if ok:
            self.status = "created"
            self.process = container_process(self.ctr)
            assert not host_file(self.ctr, self.marker).exists(), "the program ran in create"

    @stateful.rule()
    def start(self) -> None:
        ok = self.status == "created"
        self.expect(ok, refused(self.ctr.start(check=False)), "start")
        if ok:
            wait_ready(self.ctr, self.marker)
            self.status = "running"
            self.process = container_process(self.ctr)

    @stateful.rule(signal=st.sampled_from(["KILL", "TERM"]))
    def kill(self, signal: str) -> None:
        if signal == "TERM" and self.status == "created":
            signal = "KILL"  # the trap is not set until the program runs
        ok = self.status in ("created", "running")
        self.expect(ok, refused(self.ctr.kill(signal, check=False)), f"kill {signal}")
        if ok:
            assert self.process is not None
            wait_stopped(self.ctr, self.process)
            self.status = "stopped"
            self._ended()

    def may_delete(self) -> bool:
        return self.status != "created" or self.deleting_created.accepts("deleted")

    @stateful.precondition(may_delete)
    @stateful.rule()
    def delete(self) -> None:
        call_refused = refused(self.ctr.delete(check=False))
        if self.status == "created":
            self.deleting_created.require("refused" if call_refused else "deleted")
            if not call_refused:
                self.status = ABSENT
                self._ended()
            return
        ok = self.status == "stopped"
        self.expect(ok, call_refused, "delete")
        if ok:
            self.status = ABSENT

    @stateful.rule()
    def delete_force(self) -> None:
        call = self.ctr.delete(force=True, check=False)
        if self.status != ABSENT:
            assert not refused(call), f"delete --force refused in status {self.status}"
        self.status = ABSENT
        self._ended()

    @stateful.invariant()
    def status_matches_the_model(self) -> None:
        call = self.ctr.client.raw_state(self.ctr.id, check=False)
        if self.status == ABSENT:
            assert refused(call), "state answers for a container that should not exist"
        else:
            assert not refused(call), f"state refused in status {self.status}"
            assert self.ctr.state().status == self.status
        if self.process is not None:
            assert is_alive(self.process), (
                f"state says {self.status}, yet {self.process.describe()} has ended"
            )
        for process in self.ended:
            assert_ended(process, f"the model says {self.status}")

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.ctr.delete(force=True, check=False)
        self.ctr.close_stdio()
        self.stack.close()


@pytest.mark.spec(
    "runtime.lifecycle.4",
    "runtime.state.5",
    "runtime.start.3",
    "runtime.start.4",
    "runtime.kill.3",
    "runtime.delete.3",
    "runtime.create.2",
)
def test_lifecycle_follows_the_model(containers: ContainerFactory, dispute: Ask) -> None:
    Lifecycle.factory = containers
    Lifecycle.deleting_created = dispute("delete-created")
    stateful.run_state_machine_as_test(Lifecycle, settings=settings(stateful_step_count=8))


# Every transition of the model and a refusal from every status, in one fixed walk: random
# sequences of a few examples (the ci profile is derandomised) may never take some of them,
# e.g. a second life of the id. (kill TERM of a running container, delete of a stopped one,
# then the id reused; delete --force of running and created ones; refusals in each status.)
WALK: list[tuple[str, dict[str, str]]] = [
    ("kill", {"signal": "KILL"}),  # absent: refused
    ("delete", {}),  # absent: refused
    ("create", {}),
    ("create", {}),  # created: refused
    ("start", {}),
    ("start", {}),  # running: refused
    ("create", {}),  # running: refused
    ("kill", {"signal": "TERM"}),
    ("start", {}),  # stopped: refused
    ("kill", {"signal": "KILL"}),  # stopped: refused
    ("delete", {}),
    ("create", {}),  # the id's second life
    ("start", {}),
    ("delete_force", {}),
    ("create", {}),
    ("kill", {"signal": "KILL"}),
    ("delete", {}),
    ("create", {}),
    ("delete", {}),  # created: walked where the profile accepts runc's delete (may_delete)
    ("delete_force", {}),
]


@pytest.mark.spec(
    "runtime.lifecycle.4",
    "runtime.state.5",
    "runtime.start.3",
    "runtime.start.4",
    "runtime.kill.3",
    "runtime.delete.3",
    "runtime.create.2",
    "runtime.delete.6",
)
def test_lifecycle_walks_every_transition_of_the_model(
    containers: ContainerFactory, dispute: Ask
) -> None:
    Lifecycle.factory = containers
    Lifecycle.deleting_created = dispute("delete-created")
    machine = Lifecycle()
    try:
        machine.status_matches_the_model()
        for rule, kwargs in WALK:
            if rule == "delete" and not machine.may_delete():
                continue  # the rule's precondition, as hypothesis would honour it
            getattr(machine, rule)(**kwargs)
            machine.status_matches_the_model()
    finally:
        machine.teardown()
