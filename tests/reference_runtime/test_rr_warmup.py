"""The cgroup warm-up helper (cgroups/warmup.py), against a plain file standing in for the
runtime's own cgroup.procs: the forked helper writes "0" (itself), stop() writes once more and
reaps it, and it can be turned off or gives up quietly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_runtime.cgroups import warmup


@pytest.fixture
def procs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "cgroup.procs"
    target.write_bytes(b"")
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(target))
    monkeypatch.delenv("BULKHEAD_RUNTIME_WARMUP", raising=False)
    return target


def test_the_helper_writes_itself_and_stop_writes_again_and_reaps_it(procs: Path) -> None:
    helper = warmup.start()
    assert helper is not None
    pid = helper.pid
    _, status = os.waitpid(pid, 0)  # what stop() would wait for: the helper's one write
    assert os.waitstatus_to_exitcode(status) == 0
    assert procs.read_bytes() == b"0", "'0': the writing process itself"
    procs.write_bytes(b"")
    helper.pid = pid  # as if not reaped yet: stop() tolerates a helper already gone
    helper.stop()
    assert procs.read_bytes() == b"0", "stop() writes once more, from the runtime itself"
    helper.stop()  # a second stop (create's and the verb's finally) does nothing
    assert procs.read_bytes() == b"0"


def test_stop_reaps_a_helper_still_running(procs: Path) -> None:
    helper = warmup.start()
    assert helper is not None
    pid = helper.pid
    helper.stop()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind


def test_it_can_be_turned_off_and_gives_up_without_a_writable_cgroup(
    procs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKHEAD_RUNTIME_WARMUP", "0")
    assert warmup.start() is None
    monkeypatch.delenv("BULKHEAD_RUNTIME_WARMUP")
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: None)
    assert warmup.start() is None
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(procs.parent / "missing/x"))
    assert warmup.start() is None
    assert procs.read_bytes() == b""


def test_a_helper_that_cannot_write_just_exits_quietly(
    procs: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: True)  # as if it looked writable
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(procs.parent / "dir/x"))
    helper = warmup.start()
    assert helper is not None
    _, status = os.waitpid(helper.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    helper.stop()
    assert capfd.readouterr() == ("", "")
