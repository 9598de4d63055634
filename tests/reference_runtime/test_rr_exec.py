"""exec's process: the container's process with the command line's overrides (runc's rules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.errors import SpecError, UsageError
from reference_runtime.lifecycle.exec import ExecRequest, build_process

CONFIG: dict[str, Any] = {
    "process": {
        "args": ["sh"], "env": ["PATH=/bin", "FOO=old"], "cwd": "/",
        "user": {"uid": 0, "gid": 0, "additionalGids": [10]},
        "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": True,
    },
    "linux": {"personality": {"domain": "LINUX32"}},
}  # fmt: skip


def request(**fields: Any) -> ExecRequest:
    req = ExecRequest()
    for key, value in fields.items():
        setattr(req, key, value)
    return req


def test_args_env_cwd_and_user_override_the_container_process() -> None:
    proc = build_process(CONFIG, request(args=["ls", "-l"], env=["FOO=new", "BAR=1"],
                                         cwd="/tmp", user="1000:1001"))  # fmt: skip
    assert proc.args == ["ls", "-l"]
    assert proc.env == ["PATH=/bin", "FOO=new", "BAR=1"]  # a key given again replaces it
    assert proc.cwd == "/tmp"
    assert (proc.uid, proc.gid, proc.additional_gids) == (1000, 1001, [])
    # what the command line does not touch comes from the container's config
    assert proc.capabilities == {"bounding": ["CAP_KILL"]}
    assert proc.no_new_privileges
    assert proc.personality == 0x0008


def test_a_process_file_replaces_everything(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["id"], "cwd": "/", "user": {"uid": 5, "gid": 6}}))
    proc = build_process(CONFIG, request(process_file=str(path)))
    assert (proc.args, proc.uid, proc.gid, proc.env) == (["id"], 5, 6, [])


@pytest.mark.parametrize(
    ("fields", "error", "reason"),
    [
        ({}, UsageError, "needs the command"),
        ({"args": ["ls"], "cwd": "tmp"}, UsageError, "absolute path"),
        ({"args": ["ls"], "user": "root"}, UsageError, "numeric"),
        ({"process_file": "/nonexistent/process.json"}, SpecError, "No such file"),
    ],
)
def test_bad_exec_requests_are_refused(fields: dict[str, Any], error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        build_process(CONFIG, request(**fields))


def test_run_knows_when_the_bundle_wants_a_terminal(tmp_path: Path) -> None:
    from reference_runtime.lifecycle.run import _wants_tty

    (tmp_path / "config.json").write_text(json.dumps({"process": {"terminal": True}}))
    assert _wants_tty(str(tmp_path))
    (tmp_path / "config.json").write_text("not json")
    assert not _wants_tty(str(tmp_path))  # create will say what is wrong
