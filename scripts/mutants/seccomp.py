"""Mutants that get linux.seccomp wrong (config-linux.md "Seccomp", "The Container Process
State"): the filter dropped or loosened, an action replaced, errnoRet or argument conditions
ignored, and a listener that is never told, or told wrongly.

The listener mutants put a proxy between the runtime and the test's agent: the config's
listenerPath is swapped for a socket in the bundle that a forked helper serves once; it reads
the runtime's state and fd and passes them on to the real listenerPath, changed in one way.
The helper detaches from the runtime's stdio, serves one connection and exits (20 s at most).

Every mutant only weakens or mislabels the container's own filter: what the container may do
to the host is still bounded by its namespaces, capabilities and the rest of the config.
"""

from __future__ import annotations

import array
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from mutants import Call, config


def _seccomp(cfg: dict) -> dict:
    linux = cfg.get("linux") or {}
    seccomp = linux.get("seccomp")
    return seccomp if isinstance(seccomp, dict) else {}


def _rules(cfg: dict) -> list[dict]:
    return [r for r in _seccomp(cfg).get("syscalls") or [] if isinstance(r, dict)]


@config("seccomp-dropped")
def seccomp_dropped(cfg: dict, call: Call) -> None:
    (cfg.get("linux") or {}).pop("seccomp", None)


@config("seccomp-errno-ret-ignored")
def errno_ret_ignored(cfg: dict, call: Call) -> None:
    # A runtime that always returns EPERM, whatever errnoRet says.
    _seccomp(cfg).pop("defaultErrnoRet", None)
    for rule in _rules(cfg):
        rule.pop("errnoRet", None)


@config("seccomp-errno-ret-of-first-rule")
def errno_ret_of_first_rule(cfg: dict, call: Call) -> None:
    # A runtime that keeps one errno for the whole filter.
    rules = [r for r in _rules(cfg) if r.get("action") == "SCMP_ACT_ERRNO"]
    for rule in rules[1:]:
        if "errnoRet" in rules[0]:
            rule["errnoRet"] = rules[0]["errnoRet"]
        else:
            rule.pop("errnoRet", None)


@config("seccomp-errno-ret-dropped-where-unused")
def errno_ret_dropped_where_unused(cfg: dict, call: Call) -> None:
    # A runtime that ignores errnoRet on an action taking none instead of failing (with a real
    # runtime that does fail, this makes it accept the config).
    seccomp = _seccomp(cfg)
    if seccomp.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        seccomp.pop("defaultErrnoRet", None)
    for rule in _rules(cfg):
        if rule.get("action") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            rule.pop("errnoRet", None)


def _replace_actions(cfg: dict, mapping: dict[str, str]) -> None:
    seccomp = _seccomp(cfg)
    if seccomp.get("defaultAction") in mapping:
        seccomp["defaultAction"] = mapping[seccomp["defaultAction"]]
    for rule in _rules(cfg):
        if rule.get("action") in mapping:
            rule["action"] = mapping[rule["action"]]
            if rule["action"] not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
                rule.pop("errnoRet", None)


@config("seccomp-kill-as-trap")
def kill_as_trap(cfg: dict, call: Call) -> None:
    _replace_actions(
        cfg,
        dict.fromkeys(
            ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"), "SCMP_ACT_TRAP"
        ),
    )


@config("seccomp-kill-thread-as-process")
def kill_thread_as_process(cfg: dict, call: Call) -> None:
    _replace_actions(
        cfg, dict.fromkeys(("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"), "SCMP_ACT_KILL_PROCESS")
    )


@config("seccomp-kill-process-as-thread")
def kill_process_as_thread(cfg: dict, call: Call) -> None:
    _replace_actions(cfg, {"SCMP_ACT_KILL_PROCESS": "SCMP_ACT_KILL_THREAD"})


@config("seccomp-trap-as-kill")
def trap_as_kill(cfg: dict, call: Call) -> None:
    _replace_actions(cfg, {"SCMP_ACT_TRAP": "SCMP_ACT_KILL_PROCESS"})


@config("seccomp-trace-as-allow")
def trace_as_allow(cfg: dict, call: Call) -> None:
    _replace_actions(cfg, {"SCMP_ACT_TRACE": "SCMP_ACT_ALLOW"})


@config("seccomp-log-as-allow")
def log_as_allow(cfg: dict, call: Call) -> None:
    _replace_actions(cfg, {"SCMP_ACT_LOG": "SCMP_ACT_ALLOW"})


@config("seccomp-default-allow")
def default_allow(cfg: dict, call: Call) -> None:
    seccomp = _seccomp(cfg)
    if seccomp:
        seccomp["defaultAction"] = "SCMP_ACT_ALLOW"
        seccomp.pop("defaultErrnoRet", None)


@config("seccomp-args-dropped")
def args_dropped(cfg: dict, call: Call) -> None:
    # A runtime that applies a rule to every call of the syscall, whatever its arguments.
    for rule in _rules(cfg):
        rule.pop("args", None)


@config("seccomp-architectures-dropped")
def architectures_dropped(cfg: dict, call: Call) -> None:
    _seccomp(cfg).pop("architectures", None)


@config("seccomp-flags-dropped")
def flags_dropped(cfg: dict, call: Call) -> None:
    _seccomp(cfg).pop("flags", None)


@config("seccomp-listener-ignored")
def listener_ignored(cfg: dict, call: Call) -> None:
    # A runtime that never connects: its notify rules and listener are gone.
    seccomp = _seccomp(cfg)
    for key in ("listenerPath", "listenerMetadata"):
        seccomp.pop(key, None)
    if "syscalls" in seccomp:
        seccomp["syscalls"] = [r for r in _rules(cfg) if r.get("action") != "SCMP_ACT_NOTIFY"]


@config("seccomp-metadata-dropped")
def metadata_dropped(cfg: dict, call: Call) -> None:
    _seccomp(cfg).pop("listenerMetadata", None)


# --- listener proxies ---------------------------------------------------------------------------

Send = Callable[[str, bytes, list[int]], None]


def _bundle(call: Call) -> Path:
    args = call.args
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b") and i + 1 < len(args):
            return Path(args[i + 1])
    return Path.cwd()


def _read_all(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds = b"", []
    space = socket.CMSG_SPACE(16 * 4)
    while True:
        chunk, ancdata, _, _ = conn.recvmsg(65536, space)
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % 4])
                fds += list(got)
        if not chunk and not ancdata:
            return data, fds
        data += chunk


def _proxy(cfg: dict, call: Call, send: Send) -> None:
    seccomp = _seccomp(cfg)
    target = seccomp.get("listenerPath")
    if not target:
        return
    path = _bundle(call) / "mutant-proxy.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)  # listening before the runtime starts: no race
    seccomp["listenerPath"] = str(path)
    if os.fork() != 0:
        sock.close()
        return
    try:
        # Off the runtime's stdio, or whoever reads it would wait for this helper.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        sock.settimeout(20)
        conn, _ = sock.accept()
        conn.settimeout(10)
        with conn:
            data, fds = _read_all(conn)
        send(str(target), data, fds)
    except Exception:  # a helper without stdio has nobody to tell
        pass
    finally:
        path.unlink(missing_ok=True)
        os._exit(0)


def _connect(target: str) -> socket.socket:
    out = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    out.connect(target)
    return out


def _edited(data: bytes, edit: Callable[[dict], None]) -> bytes:
    doc = json.loads(data)
    edit(doc)
    return json.dumps(doc).encode()


@config("seccomp-state-sent-twice")
def state_sent_twice(cfg: dict, call: Call) -> None:
    def send(target: str, data: bytes, fds: list[int]) -> None:
        with _connect(target) as out:
            socket.send_fds(out, [data], fds)
            out.sendall(data)

    _proxy(cfg, call, send)


@config("seccomp-fd-sent-late")
def fd_sent_late(cfg: dict, call: Call) -> None:
    # The fds with a second sendmsg, where the spec wants them with the first.
    def send(target: str, data: bytes, fds: list[int]) -> None:
        with _connect(target) as out:
            out.sendall(data[:8])
            time.sleep(0.05)  # two separate segments on the agent's side
            socket.send_fds(out, [data[8:]], fds)

    _proxy(cfg, call, send)


@config("seccomp-fd-not-sent")
def fd_not_sent(cfg: dict, call: Call) -> None:
    def send(target: str, data: bytes, fds: list[int]) -> None:
        with _connect(target) as out:
            out.sendall(data)

    _proxy(cfg, call, send)


@config("seccomp-connection-left-open")
def connection_left_open(cfg: dict, call: Call) -> None:
    # The state is sent, but the connection stays open until the agent gives up.
    def send(target: str, data: bytes, fds: list[int]) -> None:
        with _connect(target) as out:
            socket.send_fds(out, [data], fds)
            out.settimeout(15)
            out.recv(1)

    _proxy(cfg, call, send)


def _edit_mutant(name: str, edit: Callable[[dict], None]) -> None:
    def mutate(cfg: dict, call: Call) -> None:
        def send(target: str, data: bytes, fds: list[int]) -> None:
            with _connect(target) as out:
                socket.send_fds(out, [_edited(data, edit)], fds)

        _proxy(cfg, call, send)

    config(name)(mutate)


def _pid_wrong(doc: dict) -> None:
    doc["pid"] = os.getpid()  # the helper's pid, not the container's


def _status_wrong(doc: dict) -> None:
    doc.get("state", {})["status"] = "running"


def _fds_unnamed(doc: dict) -> None:
    doc.pop("fds", None)


def _not_json(doc: dict) -> None:
    doc.clear()


_edit_mutant("seccomp-state-pid-wrong", _pid_wrong)
_edit_mutant("seccomp-state-status-wrong", _status_wrong)
_edit_mutant("seccomp-state-fds-unnamed", _fds_unnamed)
_edit_mutant("seccomp-state-emptied", _not_json)
