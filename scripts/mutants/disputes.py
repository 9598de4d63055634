"""Mutants on the behaviours runtimes dispute (plugins/bulkhead/disputes.py, docs/profiles.md).

Each breaks one outcome a profile accepts, so the tests of both profiles are shown able to
fail: a delete of a created container that refuses but kills anyway, or answers success and
does nothing; a start of a config without process that goes wrong after create took it; poststart
hooks run at the wrong point of create; a refused create that leaves the cgroup; kill forms
refused, misread, ignored, or refused after being sent. None lets a container do more than its
config allows: they only withhold, reorder or misreport what the real runtime does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mutants import REAL, Call, config, verb


def _status(call: Call) -> str | None:
    out = subprocess.run(
        [REAL, *call.globals, "state", call.container_id], capture_output=True, text=True
    )
    if out.returncode:
        return None
    return str(json.loads(out.stdout).get("status"))


# --- delete of a created container -----------------------------------------------------------


def _plain_delete_of_created(call: Call) -> bool:
    return (
        call.verb == "delete"
        and "--force" not in call.rest
        and "-f" not in call.rest
        and _status(call) == "created"
    )


@verb("delete-created-kills-and-refuses")
def delete_created_kills_and_refuses(call: Call) -> int | None:
    """delete of a created container answers an error, but has killed the init first."""
    if not _plain_delete_of_created(call):
        return None
    call.real_verb("kill", call.container_id, "KILL")
    sys.stderr.write("mutant: container is created; not deleted\n")
    return 1


@verb("delete-created-says-deleted")
def delete_created_says_deleted(call: Call) -> int | None:
    """delete of a created container answers success and does nothing."""
    return 0 if _plain_delete_of_created(call) else None


# --- start of a config without process -----------------------------------------------------------


@config("no-process-created-start-kills")
def no_process_created(cfg: dict, call: Call) -> None:
    """create takes a config without process (given one the suite never sees: the bundle's
    config.json is put back afterwards) ..."""
    if "process" not in cfg:
        cfg["process"] = {
            "args": ["true"], "env": ["PATH=/usr/bin:/bin"], "cwd": "/",
            "user": {"uid": 0, "gid": 0},
        }  # fmt: skip


def _bundle_has_process(call: Call) -> bool:
    out = subprocess.run(
        [REAL, *call.globals, "state", call.container_id], capture_output=True, text=True
    )
    bundle = json.loads(out.stdout).get("bundle") if out.returncode == 0 else None
    if not bundle:
        return True
    config_path = Path(bundle) / "config.json"
    try:
        return "process" in json.loads(config_path.read_text())
    except (OSError, ValueError):
        return True


@verb("no-process-created-start-kills")
def no_process_start_kills(call: Call) -> int | None:
    """... and start refuses it, but kills the container's init on the way."""
    if call.verb != "start" or _bundle_has_process(call):
        return None
    call.real_verb("kill", call.container_id, "KILL")
    sys.stderr.write("mutant: process was not set\n")
    return 1


# --- poststart hooks -----------------------------------------------------------------------------


@config("poststart-in-prestart")
def poststart_in_prestart(cfg: dict, call: Call) -> None:
    """The poststart hooks run as the last prestart hooks: during create, before the
    createRuntime and createContainer hooks."""
    hooks = cfg.get("hooks") or {}
    moved = hooks.pop("poststart", None)
    if moved:
        hooks["prestart"] = [*(hooks.get("prestart") or []), *moved]


@verb("refused-create-leaves-cgroup")
def refused_create_leaves_cgroup(call: Call) -> int | None:
    """A create that fails leaves a cgroup named after the container."""
    if call.verb != "create":
        return None
    code = call.real()
    if code != 0:
        Path(f"/sys/fs/cgroup/pids/{call.container_id}").mkdir(exist_ok=True)
    return code


# --- kill's signal -----------------------------------------------------------------------------

# signal(7) names runc knows (x86_64), without SIG.
_NAMES = {
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
}  # fmt: skip


def _signal_arg(call: Call) -> tuple[int, str] | None:
    """(index in call.args, text) of kill's SIGNAL operand, if given."""
    if call.verb != "kill" or call.index is None:
        return None
    positionals = [
        (call.index + 1 + i, a) for i, a in enumerate(call.rest) if not a.startswith("-")
    ]
    return positionals[1] if len(positionals) > 1 else None


def _other_form(text: str) -> bool:
    """Anything but the plain upper-case name: SIGUSR1, 10, usr1."""
    return text not in _NAMES


def _with_signal(call: Call, at: int, text: str) -> int:
    args = list(call.args)
    args[at] = text
    return call.real(args)


@verb("kill-other-forms-refused")
def kill_other_forms_refused(call: Call) -> int | None:
    """kill refuses every form of the signal but the plain upper-case name."""
    found = _signal_arg(call)
    if found is None or not _other_form(found[1]):
        return None
    sys.stderr.write(f"mutant: signal {found[1]!r} not understood\n")
    return 1


@verb("kill-numbers-send-term")
def kill_numbers_send_term(call: Call) -> int | None:
    """A signal given by number is sent as SIGTERM."""
    found = _signal_arg(call)
    if found is None or not found[1].isdigit():
        return None
    return _with_signal(call, found[0], "TERM")


@verb("kill-lowercase-ignored")
def kill_lowercase_ignored(call: Call) -> int | None:
    """A lower-case signal name is answered with success and nothing is sent."""
    found = _signal_arg(call)
    if found is None or found[1] == found[1].upper():
        return None
    return 0


@verb("kill-refuses-after-sending")
def kill_refuses_after_sending(call: Call) -> int | None:
    """The other forms are sent, and then the call answers an error."""
    found = _signal_arg(call)
    if found is None or not _other_form(found[1]):
        return None
    call.real()
    sys.stderr.write(f"mutant: signal {found[1]!r} refused\n")
    return 1


@verb("kill-unknown-signal-ok")
def kill_unknown_signal_ok(call: Call) -> int | None:
    """A signal name that does not exist is answered with success; nothing is sent."""
    found = _signal_arg(call)
    if found is None:
        return None
    name = found[1].upper().removeprefix("SIG")
    return 0 if not name.isdigit() and name not in _NAMES else None
