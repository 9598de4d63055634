"""create's side of the children (lifecycle/create.py ``_spawn``): the cgroups are made while
stage 1 works, the init is placed by the pid stage 1 sends and goes on only once the placed
pipe says so; a foreground run's stage 1 stays as the init's parent and exits with its status.
Stage 1 and the init are faked by forked children that write the messages under test."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace
from typing import Any

import pytest

from reference_runtime.errors import ContainerInitError
from reference_runtime.lifecycle import create as create_mod
from reference_runtime.linux.proc import is_alive
from reference_runtime.process import init as init_mod
from reference_runtime.process import protocol

NO_SYSTEM: Any = SimpleNamespace()  # the fakes make no system calls through it


def _plan(*, foreground: bool = False) -> Any:
    return SimpleNamespace(seccomp=None, user_maps=None, sync_fd=None, user_sync_fd=None,
                           seccomp_sock=-1, hook_state={}, foreground=foreground)  # fmt: skip


def _fake_stage1(code: int = 0, release: int = -1, record: str = "") -> Any:
    """Stage 1 forks an init that waits to be placed, says ready, (waits on ``release``,) and
    exits with ``code``; stage 1 sends the init's pid, then exits or, in the foreground, waits
    for it as the real one does. ``record`` gets the init's pid before it waits."""

    def stage1(plan: Any, pipe: int, system: Any) -> None:
        init = os.fork()
        if init == 0:
            if record:
                with open(record, "w") as f:
                    f.write(str(os.getpid()))
            if os.read(plan.placed_fd, 1) != b"g":
                os._exit(3)  # as the init does when the runtime gave up on its cgroups
            protocol.send(pipe, protocol.READY)
            if release >= 0:
                os.read(release, 1)
            os._exit(code)
        status = 0
        try:
            protocol.send(pipe, protocol.PID, str(init))
            if plan.foreground:
                status = init_mod._parent_of(init)
        finally:
            os._exit(status)

    return stage1


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_init_is_placed_by_its_pid_while_the_cgroups_come_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1())
    undo: list[Any] = []
    calls: list[object] = []

    def make() -> None:
        calls.append("make")

    pid, started, parent = create_mod._spawn(_plan(), NO_SYSTEM, undo, [], {}, make, calls.append)
    assert calls == ["make", pid], "made before anything else, then the init placed by pid"
    assert started is not None
    assert len(undo) == 1, "the init's pid is known, so a rollback could end it"
    assert parent == 0 and _no_children_left(), "stage 1 exited and was reaped"


def test_ready_without_a_pid_is_still_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def stage1(plan: Any, pipe: int, system: Any) -> None:
        protocol.send(pipe, protocol.READY)
        os._exit(0)

    monkeypatch.setattr(create_mod, "stage1", stage1)
    with pytest.raises(ContainerInitError, match="exited before it was ready"):
        create_mod._spawn(_plan(), NO_SYSTEM, [], [], {}, lambda: None, lambda pid: None)
    assert _no_children_left()


@pytest.mark.parametrize("foreground", [False, True], ids=["create", "foreground run"])
def test_a_failure_to_make_the_cgroups_ends_both_children_and_is_the_error(
    foreground: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The cgroups fail while the init waits to be placed: it reads end of file and exits,
    stage 1 too, and the cgroup error is what create reports, with nothing left running."""
    record = str(tmp_path / "init-pid")
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1(record=record))

    def make() -> None:
        time.sleep(0.05)  # so that stage 1 has forked the init by now
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        create_mod._spawn(_plan(foreground=foreground), NO_SYSTEM, [], [], {}, make,
                          lambda pid: None)  # fmt: skip
    assert _no_children_left(), "stage 1 reaped"
    with open(record) as f:
        init = int(f.read())
    assert not is_alive(init, None), "the init ended (at most a zombie, for the host to reap)"


def test_a_foreground_stage_1_stays_and_exits_with_the_init_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release_r, release_w = os.pipe()
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1(code=7, release=release_r))
    undo: list[Any] = []
    try:
        pid, _, parent = create_mod._spawn(_plan(foreground=True), NO_SYSTEM, undo, [], {},
                                           lambda: None, lambda pid: None)  # fmt: skip
    finally:
        os.close(release_r)
    try:
        assert parent > 0 and parent != pid
        assert len(undo) == 2, "a rollback ends the init, then reaps stage 1"
        time.sleep(0.1)  # stage 1 is in its wait, its signals ignored
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(parent, sig)  # what a terminal sends the whole process group
        time.sleep(0.05)
        assert os.waitpid(parent, os.WNOHANG) == (0, 0), "stage 1 survived its group's signals"
    finally:
        os.write(release_w, b"x")  # the init exits (its copy of release_w rules out EOF)
        os.close(release_w)
    _, status = os.waitpid(parent, 0)
    assert os.waitstatus_to_exitcode(status) == 7, "stage 1 exits with the init's status"


def test_a_foreground_rollback_ends_the_init_then_reaps_stage_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release_r, release_w = os.pipe()
    monkeypatch.setattr(create_mod, "stage1", _fake_stage1(release=release_r))
    undo: list[Any] = []

    def place(pid: int) -> None:
        raise OSError(16, "Device or resource busy")

    try:
        with pytest.raises(OSError, match="busy"):
            create_mod._spawn(_plan(foreground=True), NO_SYSTEM, undo, [], {}, lambda: None,
                              place)  # fmt: skip
        for action in reversed(undo):  # as create's rollback runs them
            action()
    finally:
        os.close(release_r)
        os.close(release_w)
    assert _no_children_left()
