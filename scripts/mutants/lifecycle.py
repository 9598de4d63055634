"""Mutants that get the lifecycle verbs or the state wrong."""

from __future__ import annotations

import json
import os
import resource
import signal
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


# --- mutants that show refusals, "stopped" and reused ids judged by the runtime's word -------


def _root(call: Call) -> Path:
    """The runtime's --root as the suite passes it (a global option before the verb)."""
    args = call.globals
    for i, arg in enumerate(args):
        if arg == "--root" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--root="):
            return Path(arg.split("=", 1)[1])
    return Path("/run/runc")


def _marks(call: Call) -> Path:
    # The mutants' own notes live beside the state dirs, in a directory whose name carries no
    # container id (so it is never taken for a container's state), removed with the root.
    marks = _root(call) / ".mutant-marks"
    marks.mkdir(exist_ok=True)
    return marks


def _real_state(call: Call) -> tuple[int, dict | None, str]:
    out = subprocess.run([REAL, *call.args], capture_output=True, text=True, check=False)
    if out.returncode:
        return out.returncode, None, out.stderr
    return 0, json.loads(out.stdout), out.stderr


def _print_state(code: int, state: dict | None, err: str) -> int:
    if state is None:
        sys.stderr.write(err)
        return code
    print(json.dumps(state))
    return 0


@verb("refusals-crash")
def refusals_crash(call: Call) -> int | None:
    # Every refusal is a death by SIGSEGV instead of an exit with a status: what a runtime that
    # crashes on the error path looks like. No core file is written (RLIMIT_CORE 0), so the
    # crash leaves nothing on the host.
    if call.verb is None:
        return None
    code = call.real()
    if code == 0:
        return 0
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGSEGV)
    return code  # not reached


def _option(rest: list[str], name: str) -> str | None:
    for i, arg in enumerate(rest):
        if arg == name and i + 1 < len(rest):
            return rest[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@verb("refused-create-leaves-state")
def refused_create_leaves_state(call: Call) -> int | None:
    # A create that answers a refusal but has already made things: its state directory and a
    # process, whose pid it wrote to --pid-file. The process is a `sleep` that ends by itself
    # within seconds, in its own session, holding nothing of the host's.
    if call.verb != "create":
        return None
    code = call.real()
    if code == 0:
        return 0
    (_root(call) / call.container_id).mkdir(exist_ok=True)
    pid_file = _option(call.rest, "--pid-file")
    if pid_file is not None:
        left = subprocess.Popen(
            ["sleep", "3"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        Path(pid_file).write_text(str(left.pid))
    return code


@verb("stopped-while-running")
def stopped_while_running(call: Call) -> int | None:
    # `state` says "stopped" as soon as the program runs: a runtime that labels a container
    # stopped without looking at its process.
    if call.verb != "state":
        return None
    code, state, err = _real_state(call)
    if state is not None and state.get("status") == "running":
        state["status"] = "stopped"
    return _print_state(code, state, err)


@verb("kill-noop-says-stopped")
def kill_noop_says_stopped(call: Call) -> int | None:
    # `kill` answers success without signalling anything, and `state` then reports the
    # container "stopped" (a stored label) while its process runs on. `delete --force` (the
    # suite's cleanup) still ends it for real.
    if call.verb == "kill":
        (_marks(call) / f"killed-{call.container_id}").touch()
        return 0
    if call.verb == "state":
        code, state, err = _real_state(call)
        if state is not None and (_marks(call) / f"killed-{call.container_id}").exists():
            state["status"] = "stopped"
        return _print_state(code, state, err)
    if call.verb == "delete":
        code = call.real()
        if code == 0:
            (_marks(call) / f"killed-{call.container_id}").unlink(missing_ok=True)
        return code
    return None


@verb("reused-id-start-noop")
def reused_id_start_noop(call: Call) -> int | None:
    # An id that was started once, deleted and created again: its second `start` does nothing
    # and answers success, and `state` says "running" (a record that outlived delete). Only a
    # fresh sign of the program can tell; a marker from the first life is still in the bundle.
    if call.verb not in ("start", "state", "delete"):
        return None
    marks = _marks(call)
    started, fake = marks / f"started-{call.container_id}", marks / f"fake-{call.container_id}"
    if call.verb == "start":
        if started.exists() and not fake.exists():
            fake.touch()
            return 0
        code = call.real()
        if code == 0:
            started.touch()
        return code
    if call.verb == "state":
        code, state, err = _real_state(call)
        if state is not None and fake.exists() and state.get("status") == "created":
            state["status"] = "running"
        return _print_state(code, state, err)
    code = call.real()
    if code == 0:
        fake.unlink(missing_ok=True)  # ...but `started` stays: the stale record
    return code


# Options of create that take a value (runc create --help), so a value is not taken for the id.
_CREATE_VALUED = {"--bundle", "-b", "--console-socket", "--pid-file", "--preserve-fds"}


def _positionals(rest: list[str], valued: set[str]) -> list[str]:
    out, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


@verb("missing-id-defaults")
def missing_id_defaults(call: Call) -> int | None:
    # Without a container id, `create` names the container after its bundle directory, and
    # state/start/kill/delete act on the only container there is: a convenience the spec
    # forbids (each operation without an id MUST error).
    if call.verb == "create" and not _positionals(call.rest, _CREATE_VALUED):
        bundle = _option(call.rest, "--bundle") or _option(call.rest, "-b") or "."
        return call.real_verb("create", *call.rest, Path(bundle).resolve().name)
    if call.verb in ("state", "start", "kill", "delete") and not _positionals(call.rest, set()):
        root = _root(call)
        ids = [e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith(".")]
        if len(ids) == 1:
            return call.real_verb(call.verb, *call.rest, ids[0])
    return None
