"""The lifecycle as a state machine (runtime.md: Lifecycle, Operations).

Hypothesis drives random sequences of create, start, kill, delete and delete --force against one
container id and checks after every step that the runtime's answer (success or refusal) and the
status it reports match a model of the spec's lifecycle. Deleting a `created` container without
--force is left out: runc and crun both deviate there (see conformance/expectations).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import settings, stateful
from hypothesis import strategies as st

from bulkhead.containers import Container, ContainerFactory
from conformance._support import WAIT_FOREVER, refused, sh, wait_ready

# What each verb may do from each status; None means "the runtime must refuse".
ABSENT = "absent"


class Lifecycle(stateful.RuleBasedStateMachine):
    factory: ContainerFactory  # set by the test before running the machine

    def __init__(self) -> None:
        super().__init__()
        self.stack = contextlib.ExitStack()
        cid, bundle = self.stack.enter_context(
            self.factory.bundle(self.factory.spec(sh("trap 'exit 0' TERM; " + WAIT_FOREVER)))
        )
        self.ctr = Container(cid, bundle, self.factory.client)
        self.status = ABSENT

    def expect(self, ok: bool, call_refused: bool, verb: str) -> None:
        if ok:
            assert not call_refused, f"{verb} was refused in status {self.status}"
        else:
            assert call_refused, f"{verb} succeeded in status {self.status}"

    @stateful.rule()
    def create(self) -> None:
        ok = self.status == ABSENT
        self.expect(ok, refused(self.ctr.create(check=False)), "create")
        if ok:
            self.status = "created"

    @stateful.rule()
    def start(self) -> None:
        ok = self.status == "created"
        self.expect(ok, refused(self.ctr.start(check=False)), "start")
        if ok:
            wait_ready(self.ctr)
            self.status = "running"

    @stateful.rule(signal=st.sampled_from(["KILL", "TERM"]))
    def kill(self, signal: str) -> None:
        if signal == "TERM" and self.status == "created":
            signal = "KILL"  # the trap is not set until the program runs
        ok = self.status in ("created", "running")
        self.expect(ok, refused(self.ctr.kill(signal, check=False)), f"kill {signal}")
        if ok:
            self.ctr.wait_for("stopped")
            self.status = "stopped"

    @stateful.precondition(lambda self: self.status != "created")
    @stateful.rule()
    def delete(self) -> None:
        ok = self.status == "stopped"
        self.expect(ok, refused(self.ctr.delete(check=False)), "delete")
        if ok:
            self.status = ABSENT

    @stateful.rule()
    def delete_force(self) -> None:
        call = self.ctr.delete(force=True, check=False)
        if self.status != ABSENT:
            assert not refused(call), f"delete --force refused in status {self.status}"
        self.status = ABSENT

    @stateful.invariant()
    def status_matches_the_model(self) -> None:
        call = self.ctr.client.raw_state(self.ctr.id, check=False)
        if self.status == ABSENT:
            assert refused(call), "state answers for a container that should not exist"
        else:
            assert not refused(call), f"state refused in status {self.status}"
            assert self.ctr.state().status == self.status

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.ctr.delete(force=True, check=False)
        self.ctr.close_stdio()
        self.stack.close()


@pytest.mark.spec(
    "runtime.lifecycle.4",
    "runtime.state.5",
    "runtime.start.3",
    "runtime.kill.3",
    "runtime.delete.3",
    "runtime.create.2",
)
def test_lifecycle_follows_the_model(containers: ContainerFactory) -> None:
    Lifecycle.factory = containers
    stateful.run_state_machine_as_test(Lifecycle, settings=settings(stateful_step_count=8))
