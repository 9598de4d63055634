"""Hooks run exactly as configured: argv, environment, state on stdin, timeout, failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reference_runtime.process.hooks import (
    Hook,
    HookError,
    hooks_of,
    run_all,
    run_all_warning,
    state_json,
)

BASE = {"ociVersion": "1.3.0", "id": "c1", "bundle": "/b", "annotations": {"a": "b"}}


def recorder(tmp_path: Path, name: str, body: str = "") -> Hook:
    out = tmp_path / name
    script = (
        f"exec 3</proc/self/cmdline 4</proc/self/environ; /bin/cat <&3 >{out}.argv; "
        f"/bin/cat <&4 >{out}.environ; /bin/cat >{out}.stdin; echo {name} >>{tmp_path}/order; "
        + body
    )
    return Hook("prestart", "/bin/sh", ["argv0", "-c", script], ["A=1", "B=two words"], None)


def test_a_hook_gets_exactly_its_argv_env_and_the_state(tmp_path: Path) -> None:
    hook = recorder(tmp_path, "h")
    run_all([hook], state_json(BASE, "creating", 42))
    assert (tmp_path / "h.argv").read_bytes().split(b"\0")[:2] == [b"argv0", b"-c"]
    assert (tmp_path / "h.environ").read_bytes() == b"A=1\0B=two words\0"
    state = json.loads((tmp_path / "h.stdin").read_text())
    assert state == {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 42,
                     "bundle": "/b", "annotations": {"a": "b"}}  # fmt: skip


def test_hooks_run_in_order_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    hooks = [recorder(tmp_path, "one"), recorder(tmp_path, "two", "exit 3"),
             recorder(tmp_path, "three")]  # fmt: skip
    with pytest.raises(HookError, match="exited with status 3"):
        run_all(hooks, b"{}")
    assert (tmp_path / "order").read_text() == "one\ntwo\n"


def test_poststop_failures_are_warnings_and_the_rest_still_run(tmp_path: Path) -> None:
    hooks = [recorder(tmp_path, "one", "exit 1"), recorder(tmp_path, "two")]
    warnings = run_all_warning(hooks, b"{}")
    assert len(warnings) == 1 and "exited with status 1" in warnings[0]
    assert (tmp_path / "order").read_text() == "one\ntwo\n"


def test_a_hook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    hook = Hook("prestart", "/bin/sleep", ["sleep", "5"], [], 1)
    with pytest.raises(HookError, match="did not finish within 1 s"):
        run_all([hook], b"{}")


def test_a_hook_that_cannot_be_executed_fails(tmp_path: Path) -> None:
    with pytest.raises(HookError, match="status 127"):
        run_all([Hook("poststart", str(tmp_path / "missing"), [], [], None)], b"{}")


def test_hooks_are_read_from_the_config_in_listed_order() -> None:
    second = {"path": "/b", "args": ["b", "x"], "env": ["K=V"], "timeout": 3}
    config = {"hooks": {"poststart": [{"path": "/a"}, second]}}
    hooks = hooks_of(config, "poststart")
    assert [(h.path, h.args, h.env, h.timeout) for h in hooks] == [
        ("/a", ["/a"], [], None),  # no args: argv is just the path
        ("/b", ["b", "x"], ["K=V"], 3),
    ]
    assert hooks_of(config, "poststop") == []
    assert hooks_of({}, "prestart") == []


def test_the_environment_of_the_runtime_is_not_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_SECRET", "x")  # CVE-2025-23266: nothing leaks into a hook
    hook = recorder(tmp_path, "h")
    hook.env = []
    run_all([hook], b"{}")
    assert (tmp_path / "h.environ").read_bytes() == b""
    assert "RUNTIME_SECRET" in os.environ
