"""The cgroup warm-up helper (cgroups/warmup.py), against a plain file standing in for the
runtime's own cgroup.procs: the spawned shell writes "0" (itself), stop() writes once more and
reaps it; the launcher's early start finds the verb in argv as the parser does; and the helper
can be turned off or gives up quietly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_runtime.cgroups import warmup
from reference_runtime.cli.args import VALUE
from reference_runtime.cli.main import GLOBAL_OPTIONS


@pytest.fixture
def procs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "cgroup.procs"
    target.write_bytes(b"")
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(target))
    monkeypatch.setattr(warmup, "_early", None)
    monkeypatch.delenv("BULKHEAD_RUNTIME_WARMUP", raising=False)
    return target


def test_the_helper_writes_itself_and_stop_writes_again_and_reaps_it(procs: Path) -> None:
    helper = warmup.start()
    assert helper is not None
    pid = helper.pid
    _, status = os.waitpid(pid, 0)  # what stop() would wait for: the helper's one write
    assert os.waitstatus_to_exitcode(status) == 0
    assert procs.read_bytes().strip() == b"0", "'0': the writing process itself"
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


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["rt", "run", "--bundle", "b", "id"], "run"),
        (["rt", "--root", "/r", "create", "id"], "create"),
        (["rt", "--root=/r", "--log", "run", "exec", "id"], "exec"),  # --log's value is "run"
        (["rt", "-log-format", "json", "--debug", "state", "id"], "state"),
        (["rt", "--", "exec"], "exec"),
        (["rt", "--root"], None),
        (["rt"], None),
    ],
)
def test_the_verb_is_found_as_the_parser_finds_it(argv: list[str], verb: str | None) -> None:
    assert warmup.verb_of(argv) == verb


def test_the_global_options_with_values_are_cli_mains() -> None:
    values = {name for name, kind in GLOBAL_OPTIONS.items() if kind == VALUE}
    assert set(warmup.GLOBAL_VALUE_OPTIONS) == values


def test_the_launcher_starts_it_for_create_run_and_exec_only(procs: Path) -> None:
    warmup.early(["rt", "--root", "/r", "state", "id"])
    assert warmup.start() is not None, "state: nothing early, so the verb starts its own"
    warmup.finish()
    warmup.early(["rt", "--root", "/r", "run", "id"])
    helper = warmup._early
    assert helper is not None and helper.pid > 0
    assert warmup.start() is helper, "the verb takes the launcher's helper"
    assert warmup._early is None
    helper.stop()


def test_finish_reaps_a_helper_no_verb_took(procs: Path) -> None:
    warmup.early(["rt", "create"])
    helper = warmup._early
    assert helper is not None
    pid = helper.pid
    warmup.finish()
    assert warmup._early is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


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
    monkeypatch.setattr(warmup, "SHELL", str(procs.parent / "no-shell"))
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(procs))
    assert warmup.start() is None, "no shell to spawn: no helper"
    assert procs.read_bytes() == b""


def test_a_helper_that_cannot_write_just_exits_quietly(
    procs: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: True)  # as if it looked writable
    monkeypatch.setattr(warmup, "_own_procs_file", lambda: str(procs.parent / "dir/x"))
    helper = warmup.start()
    assert helper is not None
    _, status = os.waitpid(helper.pid, 0)
    assert os.waitstatus_to_exitcode(status) != 0, "the shell's redirection failed"
    helper.stop()
    assert capfd.readouterr() == ("", ""), "and said nothing (its stderr went to /dev/null)"
