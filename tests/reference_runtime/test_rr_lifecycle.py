"""The lifecycle state machine and the state store (atomic, locked)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from reference_runtime.errors import Exists, InvalidTransition, NotFound, SpecError
from reference_runtime.lifecycle.container import Container
from reference_runtime.lifecycle.status import ALLOWED, Status, check, derive
from reference_runtime.lifecycle.store import Store, check_id

# runtime.md "Operations", as a table: (operation, status) → allowed?
EXPECTED = {
    ("start", Status.CREATED): True,
    ("start", Status.RUNNING): False,
    ("start", Status.STOPPED): False,
    ("kill", Status.CREATED): True,
    ("kill", Status.RUNNING): True,
    ("kill", Status.STOPPED): False,
    ("delete", Status.STOPPED): True,
    ("delete", Status.CREATED): False,  # runtime.md: MUST error unless stopped (runc deviates)
    ("delete", Status.RUNNING): False,
    ("delete --force", Status.CREATED): True,
    ("delete --force", Status.RUNNING): True,
    ("delete --force", Status.STOPPED): True,
    ("pause", Status.RUNNING): True,
    ("pause", Status.CREATED): False,
    ("resume", Status.PAUSED): True,
    ("resume", Status.RUNNING): False,
}


@pytest.mark.parametrize(("operation", "status"), sorted(EXPECTED))
def test_the_transition_table(operation: str, status: str) -> None:
    if EXPECTED[(operation, status)]:
        check(operation, status)
    else:
        with pytest.raises(InvalidTransition) as info:
            check(operation, status)
        assert status in str(info.value) and operation in str(info.value)


def test_every_operation_names_only_known_statuses() -> None:
    for statuses in ALLOWED.values():
        assert set(statuses) <= set(Status.ALL)


@pytest.mark.parametrize(
    ("alive", "fifo", "frozen", "status"),
    [
        (False, True, False, Status.STOPPED),  # a dead init is stopped, whatever is left
        (True, True, False, Status.CREATED),
        (True, False, False, Status.RUNNING),
        (True, False, True, Status.PAUSED),
    ],
)
def test_status_is_derived_from_facts(alive: bool, fifo: bool, frozen: bool, status: str) -> None:
    assert derive(alive, fifo, frozen) == status


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "x" * 1025, "é"])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(SpecError):
        check_id(bad)


def test_valid_ids() -> None:
    for good in ("abc", "a.b-c_d+e", "0"):
        check_id(good)


def test_reserving_an_id_twice_is_refused(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    store.reserve("c1")
    with pytest.raises(Exists):
        store.reserve("c1")
    assert oct(os.stat(store.dir("c1")).st_mode & 0o777) == "0o711"


def test_state_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save("c1", {"pid": 1, "bundle": "/b"})
    inode = os.stat(os.path.join(store.dir("c1"), "state.json")).st_ino
    store.save("c1", {"pid": 2, "bundle": "/b"})
    assert store.load("c1") == {"pid": 2, "bundle": "/b"}
    # rename() replaced the file: a reader holding the old one never saw a half-written file
    assert os.stat(os.path.join(store.dir("c1"), "state.json")).st_ino != inode
    assert sorted(os.listdir(store.dir("c1"))) == ["state.json"]  # no temporary left
    assert store.ids() == ["c1"]


def test_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    big = {"pid": 1, "pad": "x" * 200_000}
    # A state exists before the writers start, so every load below has one to read (reserve
    # alone makes only the directory).
    store.save("c1", big)
    children = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(20):
                    fd = store.lock("c1")
                    store.save("c1", {**big, "pid": n})
                    os.close(fd)
            finally:
                os._exit(0)
        children.append(pid)
    for _ in range(50):
        state = store.load("c1")  # always complete JSON
        assert state["pad"] == big["pad"]
    for pid in children:
        os.waitpid(pid, 0)


def test_the_lock_excludes_other_processes(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    fd = store.lock("c1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        other = os.open(store.dir("c1"), os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(w, b"got")
        except BlockingIOError:
            os.write(w, b"blocked")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 10) == b"blocked"
    os.close(fd)


def test_unknown_containers_are_not_found(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with pytest.raises(NotFound):
        store.load("nope")
    with pytest.raises(NotFound):
        store.lock("nope")


def test_a_container_whose_init_is_gone_is_stopped(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    ctr = Container(store, "c1", {"pid": pid, "start_time": 1, "bundle": "/b"})
    assert ctr.status == Status.STOPPED
    assert ctr.public_state()["pid"] == 0


def test_a_live_process_with_another_start_time_is_not_the_init(tmp_path: Path) -> None:
    from reference_runtime.linux.proc import start_time

    store = Store(str(tmp_path))
    store.reserve("c1")
    me = os.getpid()
    real = start_time(me)
    assert real is not None
    os.mkfifo(store.fifo("c1"))
    assert Container(store, "c1", {"pid": me, "start_time": real, "bundle": "/b"}).status == (
        Status.CREATED
    )
    reused = Container(store, "c1", {"pid": me, "start_time": real + 1, "bundle": "/b"})
    assert reused.status == Status.STOPPED  # pid reuse is not mistaken for the container
    os.unlink(store.fifo("c1"))
    assert Container(store, "c1", {"pid": me, "start_time": real, "bundle": "/b"}).status == (
        Status.RUNNING
    )


def test_delete_force_clears_a_directory_a_dead_create_left(tmp_path: Path) -> None:
    from reference_runtime.lifecycle.delete import delete

    store = Store(str(tmp_path))
    store.reserve("c1")  # as a runtime that died before writing the state would leave it
    with pytest.raises(NotFound):
        delete(store, "c1")  # without --force it is not a container to delete
    assert os.path.isdir(store.dir("c1"))
    assert delete(store, "c1", force=True) == []
    assert not os.path.exists(store.dir("c1"))
