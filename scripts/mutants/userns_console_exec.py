"""Mutants of user and time namespaces, the terminal, and ``exec``.

Safety: the shifted or swapped mappings still map the container to unprivileged host ids; a
container whose user namespace is dropped runs as root with the suite's default, hardened
capability sets, like every other test's container. The exec mutants change only the exec'd
process: the one that leaves the container's cgroups moves it to the root cgroup of each
hierarchy (it escapes limits no test here sets), and the one that fills the inheritable set
copies the container's own bounding set, nothing the container did not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from mutants import REAL, VALUE_OPTIONS, Call, config, verb


def _linux(cfg: dict) -> dict:
    linux = cfg.setdefault("linux", {})
    assert isinstance(linux, dict)
    return linux


def _has_new_userns(cfg: dict) -> bool:
    return any(ns.get("type") == "user" and not ns.get("path")
               for ns in _linux(cfg).get("namespaces", []))  # fmt: skip


# --- user namespaces ----------------------------------------------------------------------------


@config("userns-mappings-shifted")
def userns_mappings_shifted(cfg: dict, call: Call) -> None:
    # An off-by-one in writing uid_map: every range starts one host id higher.
    for m in _linux(cfg).get("uidMappings", []):
        m["hostID"] = m.get("hostID", 0) + 1


@config("userns-gids-as-uids")
def userns_gids_as_uids(cfg: dict, call: Call) -> None:
    # A runtime that writes the uid maps to gid_map too.
    linux = _linux(cfg)
    if "uidMappings" in linux and "gidMappings" in linux:
        linux["gidMappings"] = [dict(m) for m in linux["uidMappings"]]


@config("userns-first-range-only")
def userns_first_range_only(cfg: dict, call: Call) -> None:
    linux = _linux(cfg)
    for key in ("uidMappings", "gidMappings"):
        if len(linux.get(key, [])) > 1:
            linux[key] = linux[key][:1]


@config("userns-dropped")
def userns_dropped(cfg: dict, call: Call) -> None:
    # A runtime that ignores the user namespace (and so the mappings) altogether.
    linux = _linux(cfg)
    if _has_new_userns(cfg):
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns.get("type") != "user"]
        linux.pop("uidMappings", None)
        linux.pop("gidMappings", None)


def _bundle(call: Call) -> Path:
    bundle = _option(call.rest, "--bundle") or _option(call.rest, "-b")
    return Path(bundle) if bundle else Path.cwd()


@config("userns-rootfs-chowned")
def userns_rootfs_chowned(cfg: dict, call: Call) -> None:
    # A runtime that realises the mapping by chowning the rootfs (config-linux.md: SHOULD NOT).
    # Through the bundle's overlay: the change lands in that bundle's upper directory only.
    linux = _linux(cfg)
    if not _has_new_userns(cfg):
        return
    uid = next((m["hostID"] for m in linux.get("uidMappings", []) if m.get("containerID") == 0),
               None)  # fmt: skip
    gid = next((m["hostID"] for m in linux.get("gidMappings", []) if m.get("containerID") == 0),
               None)  # fmt: skip
    if uid is None or gid is None:
        return
    root = _bundle(call) / cfg.get("root", {}).get("path", "rootfs")
    for path in [root / "srv", *(root / "srv").rglob("*")]:
        with contextlib.suppress(OSError):
            os.lchown(path, uid, gid)


@config("userns-path-unshared")
def userns_path_unshared(cfg: dict, call: Call) -> None:
    # A runtime that makes a new user namespace instead of joining the one at path, with the
    # joined one's maps (so the ids look right; the namespace is another).
    linux = _linux(cfg)
    for ns in linux.get("namespaces", []):
        if ns.get("type") == "user" and ns.get("path"):
            pid = ns["path"].split("/")[2] if ns["path"].startswith("/proc/") else "self"
            maps = {}
            for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
                lines = Path(f"/proc/{pid}/{name}").read_text().split("\n")
                maps[key] = [
                    {"containerID": int(f[0]), "hostID": int(f[1]), "size": int(f[2])}
                    for f in (line.split() for line in lines)
                    if len(f) == 3
                ]
            del ns["path"]
            linux.update(maps)


# --- time namespaces ----------------------------------------------------------------------------


@config("time-offsets-ignored")
def time_offsets_ignored(cfg: dict, call: Call) -> None:
    _linux(cfg).pop("timeOffsets", None)


@config("time-namespace-ignored")
def time_namespace_ignored(cfg: dict, call: Call) -> None:
    # What a runtime that does not know the time namespace must not do: run without it.
    linux = _linux(cfg)
    linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "time"]
    linux.pop("timeOffsets", None)


# --- the terminal -------------------------------------------------------------------------------


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _drop_option(args: list[str], name: str, *, value: bool = True) -> None:
    i = 0
    while i < len(args):
        if args[i] == name:
            del args[i : i + (2 if value else 1)]
        elif args[i].startswith(name + "="):
            del args[i]
        else:
            i += 1


def _process(cfg: dict) -> dict:
    process = cfg.setdefault("process", {})
    assert isinstance(process, dict)
    return process


@config("terminal-ignored")
def terminal_ignored(cfg: dict, call: Call) -> None:
    # No pty at all: the process runs on the runtime's stdio and nothing is sent.
    if _process(cfg).get("terminal"):
        _process(cfg)["terminal"] = False
        _drop_option(call.args, "--console-socket")


@config("console-size-ignored")
def console_size_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).pop("consoleSize", None)


@config("console-size-swapped")
def console_size_swapped(cfg: dict, call: Call) -> None:
    size = _process(cfg).get("consoleSize")
    if isinstance(size, dict):
        size["height"], size["width"] = size.get("width"), size.get("height")


@config("console-socket-unchecked")
def console_socket_unchecked(cfg: dict, call: Call) -> None:
    # A runtime that takes whatever path it is given and, when that is no socket, goes on
    # without a terminal instead of failing.
    path = _option(call.args, "--console-socket")
    with contextlib.suppress(OSError):
        if path is not None and not stat.S_ISSOCK(os.stat(path).st_mode):
            _drop_option(call.args, "--console-socket")
            _process(cfg)["terminal"] = False


# --- exec ---------------------------------------------------------------------------------------


def _dropping(call: Call, name: str) -> int:
    args = list(call.args)
    head, rest = args[: call.index + 1], args[call.index + 1 :]  # type: ignore[operator]
    cut = _id_index(rest)
    options, tail = rest[:cut], rest[cut:]
    _drop_option(options, name)
    return call.real([*head, *options, *tail])


def _id_index(rest: list[str]) -> int:
    """Where the container id sits among ``exec``'s arguments."""
    i = 0
    while i < len(rest):
        if rest[i] == "--":
            return i + 1
        if not rest[i].startswith("-"):
            return i
        i += 2 if rest[i] in VALUE_OPTIONS else 1
    return len(rest)


@verb("exec-env-ignored")
def exec_env_ignored(call: Call) -> int | None:
    return _dropping(call, "--env") if call.verb == "exec" else None


@verb("exec-cwd-ignored")
def exec_cwd_ignored(call: Call) -> int | None:
    return _dropping(call, "--cwd") if call.verb == "exec" else None


@verb("exec-user-ignored")
def exec_user_ignored(call: Call) -> int | None:
    return _dropping(call, "--user") if call.verb == "exec" else None


@verb("exec-into-stopped-accepted")
def exec_into_stopped_accepted(call: Call) -> int | None:
    # A runtime that answers success for an exec into a stopped container, running nothing.
    if call.verb != "exec":
        return None
    state = subprocess.run([REAL, *call.globals, "state", call.container_id],
                           capture_output=True, text=True, check=False)  # fmt: skip
    with contextlib.suppress(ValueError):
        if json.loads(state.stdout).get("status") == "stopped":
            return 0
    return None


@verb("exec-detach-wrong-pid")
def exec_detach_wrong_pid(call: Call) -> int | None:
    # The pid file of a detached exec names the container's init, not the exec'd process.
    pid_file = _option(call.rest, "--pid-file") if call.verb == "exec" else None
    if pid_file is None:
        return None
    code = call.real()
    state = subprocess.run([REAL, *call.globals, "state", call.container_id],
                           capture_output=True, text=True, check=False)  # fmt: skip
    with contextlib.suppress(ValueError):
        Path(pid_file).write_text(str(json.loads(state.stdout)["pid"]))
    return code


def _root_cgroups() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    found = [base / "cgroup.procs"] if (base / "cgroup.procs").exists() else []
    return found + [d / "cgroup.procs" for d in base.iterdir() if (d / "cgroup.procs").exists()]


@verb("exec-outside-cgroup")
def exec_outside_cgroup(call: Call) -> int | None:
    # The exec'd process ends up outside the container's cgroups (in each hierarchy's root).
    # It stops itself first (a shell in front of the command), so it is moved before the
    # command runs: the test sees the move, not a race with it.
    rest = call.rest
    cut = _id_index(rest)
    if call.verb != "exec" or _option(rest, "--pid-file") is not None or cut >= len(rest):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "pid"
        stop_first = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "sh"]
        args = [*call.globals, "exec", f"--pid-file={pid_file}", *rest[: cut + 1], *stop_first,
                *rest[cut + 1 :]]  # fmt: skip
        proc = subprocess.Popen([REAL, *args])
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            text = pid_file.read_text().strip() if pid_file.exists() else ""
            if text and _stopped(text):
                for procs in _root_cgroups():
                    with contextlib.suppress(OSError):
                        procs.write_text(text)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(text), signal.SIGCONT)
                break
            time.sleep(0.005)
        return proc.wait()


def _stopped(pid: str) -> bool:
    try:
        stat_ = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_.rpartition(")")[2].split()[0] == "T"


@verb("exec-caps-inheritable")
def exec_caps_inheritable(call: Call) -> int | None:
    # CVE-2022-29162: the exec'd process gets the bounding set as its inheritable set.
    if call.verb != "exec" or _option(call.rest, "--process") is not None:
        return None
    rest = call.rest
    cut = _id_index(rest)
    if cut >= len(rest):
        return None
    state = subprocess.run([REAL, *call.globals, "state", call.container_id],
                           capture_output=True, text=True, check=False)  # fmt: skip
    try:
        bundle = Path(json.loads(state.stdout)["bundle"])
        process = json.loads((bundle / "config.json").read_text())["process"]
    except (ValueError, KeyError, OSError):
        return None
    process["args"] = rest[cut + 1 :]
    caps = process.setdefault("capabilities", {})
    caps["inheritable"] = list(caps.get("bounding", []))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(process, f)
    try:
        return call.real([*call.globals, "exec", *rest[:cut], "--process", f.name, rest[cut]])
    finally:
        os.unlink(f.name)


@verb("exec-process-file-partial")
def exec_process_file_partial(call: Call) -> int | None:
    # A runtime that takes only args from --process and runs them as the container's root in
    # its cwd, with the config's environment left out of the copy (user, cwd and env lost).
    path = _option(call.rest, "--process") if call.verb == "exec" else None
    if path is None:
        return None
    try:
        process = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    process["user"] = {"uid": 0, "gid": 0}
    process["cwd"] = "/"
    process["env"] = [e for e in process.get("env", []) if e.startswith("PATH=")]
    # A copy: the caller's file stays as it wrote it.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(process, f)
    try:
        return call.real([f.name if arg == path else arg for arg in call.args])
    finally:
        os.unlink(f.name)
