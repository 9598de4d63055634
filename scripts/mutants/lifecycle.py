"""Mutants that get the lifecycle verbs or the state wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mutants import REAL, Call, config, verb


@config("no-annotations")
def no_annotations(cfg: dict, call: Call) -> None:
    cfg.pop("annotations", None)


@verb("delete-leaves-cgroup")
def delete_leaves_cgroup(call: Call) -> int | None:
    if call.verb != "delete":
        return None
    code = call.real()
    if code == 0:
        # What a runtime that forgets its cgroups leaves behind.
        Path(f"/sys/fs/cgroup/pids/{call.container_id}").mkdir(exist_ok=True)
    return code


@verb("create-starts")
def create_starts(call: Call) -> int | None:
    if call.verb != "create":
        return None
    return call.real() or call.real_verb("start", call.container_id)


@verb("start-twice-ok")
def start_twice_ok(call: Call) -> int | None:
    if call.verb != "start":
        return None
    call.real()
    return 0


@verb("delete-always-forces")
def delete_always_forces(call: Call) -> int | None:
    if call.verb != "delete" or "--force" in call.rest:
        return None
    return call.real_verb("delete", "--force", *call.rest)


@verb("kill-does-nothing")
def kill_does_nothing(call: Call) -> int | None:
    return 0 if call.verb == "kill" else None


@verb("state-says-running")
def state_says_running(call: Call) -> int | None:
    if call.verb != "state":
        return None
    out = subprocess.run([REAL, *call.args], capture_output=True, text=True, check=False)
    if out.returncode:
        sys.stderr.write(out.stderr)
        return out.returncode
    state = json.loads(out.stdout)
    state["status"] = "running"
    print(json.dumps(state))
    return 0


@verb("unknown-ids-ok")
def unknown_ids_ok(call: Call) -> int | None:
    if call.verb not in ("create", "state", "start", "kill", "delete"):
        return None
    code = call.real(stderr=subprocess.DEVNULL)
    if call.verb == "state" and code != 0:
        print("{}")
    return 0
