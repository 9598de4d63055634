"""create's side of the children's pipe (lifecycle/create.py ``_spawn``): stage 1 sends the
init's pid and the init its progress over the same pipe, in no set order. A "ready" that
comes before the pid must wait for it, not end create without one. Stage 1 is faked here by
a forked child that writes the messages in the order under test, once the runtime has said
it is in its cgroups (the placed pipe)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from reference_runtime.errors import ContainerInitError
from reference_runtime.lifecycle import create as create_mod
from reference_runtime.process import protocol

NO_SYSTEM: Any = SimpleNamespace()  # the fake stage 1 makes no system calls through it


def _plan() -> Any:
    return SimpleNamespace(seccomp=None, user_maps=None, sync_fd=None, user_sync_fd=None,
                           seccomp_sock=-1, hook_state={})  # fmt: skip


def _fake_stage1(*messages: tuple[str, ...]) -> Any:
    def stage1(plan: Any, pipe: int, system: Any) -> None:
        if os.read(plan.placed_fd, 1) != b"g":
            os._exit(3)  # as stage 1 does when the runtime gave up on its cgroups
        for kind, *fields in messages:
            if kind == protocol.PID:
                fields = [str(os.getpid())]  # a live process, as the init would be
            protocol.send(pipe, kind, *fields)
        os._exit(0)

    return stage1


@pytest.mark.parametrize("order", ["pid first", "ready first"])
def test_the_pid_is_waited_for_whichever_comes_first(
    order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [(protocol.PID, ""), (protocol.READY,)]
    if order == "ready first":
        messages.reverse()
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1(*messages))
    undo: list[Any] = []
    placed: list[int] = []
    pid, started = create_mod._spawn(_plan(), NO_SYSTEM, undo, [], {}, placed.append)
    assert pid > 0 and started is not None
    assert len(undo) == 1, "the init's pid is known, so a rollback could end it"
    assert placed == [pid], "stage 1 was placed (this fake sends its own pid as the init's)"


def test_ready_without_a_pid_is_still_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1((protocol.READY,)))
    with pytest.raises(ContainerInitError, match="exited before it was ready"):
        create_mod._spawn(_plan(), NO_SYSTEM, [], [], {}, lambda child: None)


def test_a_failure_to_place_stage_1_ends_it_and_is_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cgroups fail while stage 1 waits to be placed: it reads end of file and exits, is
    reaped, and the cgroup error is what create reports."""
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1((protocol.PID, ""), (protocol.READY,)))
    children: list[int] = []

    def place(child: int) -> None:
        children.append(child)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        create_mod._spawn(_plan(), NO_SYSTEM, [], [], {}, place)
    with pytest.raises(ChildProcessError):
        os.waitpid(children[0], os.WNOHANG)  # reaped: no zombie, nothing left running
