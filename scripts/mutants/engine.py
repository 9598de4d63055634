"""Mutants that the engine's full-stack tests (conformance/test_engine_*.py) must notice: a
runtime that gets the bundle the engine hands it wrong, seen through the engine.

Each stays inside the container or the runtime's own files: the copied root lives in /dev/shm
and goes with the container, the kept cgroup is an empty directory under the cgroup parent the
engine named (removed by the suite's teardown, which also reports it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from mutants import Call, config, verb

# The files the engine bind-mounts from containers/<id>/ (docker's).
ENGINE_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def _record(container_id: str) -> Path:
    return Path("/dev/shm") / f"bulkhead-mutant-cgroup-{container_id}"


def _copy_of(container_id: str) -> Path:
    return Path("/dev/shm") / f"bulkhead-mutant-root-{container_id}"


@config("engine-files-unbound")
def engine_files_unbound(cfg: dict, call: Call) -> None:
    # A runtime that skips the bind mounts of single files (the container keeps the image's).
    cfg["mounts"] = [m for m in cfg.get("mounts", []) if m.get("destination") not in ENGINE_FILES]


@config("stdout-to-stderr")
def stdout_to_stderr(cfg: dict, call: Call) -> None:
    # A runtime that hands the process one stream for both (its stdout is the stderr it got).
    process = cfg.setdefault("process", {})
    process["args"] = ["/bin/sh", "-c", 'exec "$@" 1>&2', "sh", *process.get("args", [])]


@config("exit-status-lost")
def exit_status_lost(cfg: dict, call: Call) -> None:
    # A runtime whose container always exits 0, whatever its program returned.
    process = cfg.setdefault("process", {})
    process["args"] = ["/bin/sh", "-c", '"$@"; exit 0', "sh", *process.get("args", [])]


@config("root-copied-aside")
def root_copied_aside(cfg: dict, call: Call) -> None:
    # The engine's overlay copied onto tmpfs: the same files, but not the layers (writes miss
    # the upper dir; the inodes and the filesystem are other ones).
    copy = _copy_of(call.container_id)
    root = Path(cfg["root"]["path"])
    if not root.is_absolute():  # relative to the bundle (config.md, root.path)
        rest = call.rest
        flags = [i for i, arg in enumerate(rest[:-1]) if arg in ("--bundle", "-b")]
        root = Path(rest[flags[0] + 1] if flags else ".") / root
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)
    cfg["root"]["path"] = str(copy)


@verb("root-copied-aside")
def root_copied_aside_delete(call: Call) -> int | None:
    if call.verb != "delete":
        return None
    code = call.real()
    shutil.rmtree(_copy_of(call.container_id), ignore_errors=True)
    return code


@verb("term-as-kill")
def term_as_kill(call: Call) -> int | None:
    # A runtime that sends SIGKILL whatever it was asked: `stop` cannot let the process end.
    if call.verb != "kill":
        return None
    rest = call.rest
    if rest and rest[-1].upper().removeprefix("SIG") in ("TERM", "15"):
        return call.real([*call.args[:-1], "KILL"])
    return None


@config("cgroup-kept-after-delete")
def cgroup_recorded(cfg: dict, call: Call) -> None:
    path = str((cfg.get("linux") or {}).get("cgroupsPath") or "")
    _record(call.container_id).write_text(json.dumps(path))


@verb("cgroup-kept-after-delete")
def cgroup_kept_after_delete(call: Call) -> int | None:
    # A runtime whose delete forgets the container's cgroup in one hierarchy (an empty dir).
    if call.verb != "delete":
        return None
    code = call.real()
    record = _record(call.container_id)
    if code == 0 and record.exists():
        path = json.loads(record.read_text()).strip("/")
        record.unlink()
        if path:
            Path("/sys/fs/cgroup/pids", path).mkdir(parents=True, exist_ok=True)
    return code
