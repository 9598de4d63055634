"""``exec``: run another process in a running container (its namespaces and its cgroup).

::

    runtime ── fork ──► stage 1: join the cgroup, setns into each namespace (mount last)
                          └─ fork ──► the process: rlimits, user, capabilities, execve
               ◄── "pid N" / "error" ── (stage 1 waits for it and exits with its status)

The fork after setns is needed for the pid namespace: setns(CLONE_NEWPID) only moves the
caller's future children (pid_namespaces(7)).
"""

from __future__ import annotations

import os

from reference_runtime import jsonio
from reference_runtime.errors import SpecError, UsageError
from reference_runtime.lifecycle.container import Container
from reference_runtime.lifecycle.kill import cgroup_of
from reference_runtime.lifecycle.status import check
from reference_runtime.linux import namespaces as ns
from reference_runtime.linux.constants import NAMESPACES, PERSONALITIES, PR_SET_DUMPABLE
from reference_runtime.linux.libc import prctl
from reference_runtime.linux.proc import close_inherited_fds, exit_code
from reference_runtime.linux.signals import reset_for_exec
from reference_runtime.linux.tty import become_terminal_of, open_pty, send_master, set_size
from reference_runtime.process import protocol
from reference_runtime.process.attrs import (
    apply_identity,
    apply_privileged,
    environ,
    find_executable,
)
from reference_runtime.spec.validate import parse_process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.cgroups.manager import Manager
    from reference_runtime.cgroups.warmup import Warmup
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.seccomp import Filter
    from reference_runtime.spec.model import Process


class ExecRequest:
    __slots__ = ("args", "console_socket", "cwd", "detach", "env", "pid_file", "preserve_fds",
                 "process_file", "tty", "user")  # fmt: skip

    def __init__(self) -> None:
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd: str | None = None
        self.user: str | None = None
        self.pid_file: str | None = None
        self.process_file: str | None = None
        self.detach = False
        self.tty = False
        self.console_socket: str | None = None
        self.preserve_fds = 0  # --preserve-fds: fds 3..3+N-1 stay open in the process


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    keys = {item.partition("=")[0] for item in extra}
    return [item for item in base if item.partition("=")[0] not in keys] + extra


def build_process(config: dict[str, Any], req: ExecRequest) -> Process:
    if req.process_file is not None:
        try:
            with open(req.process_file, "rb") as f:
                raw = jsonio.loads(f.read())
        except OSError as exc:
            raise SpecError(f"--process {req.process_file}: {exc.strerror}") from None
        except jsonio.JSONError as exc:
            raise SpecError(f"--process {req.process_file} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise SpecError(f"--process {req.process_file} must hold a JSON object")
        return parse_process(raw)
    if not req.args:
        raise UsageError("exec needs the command to run after the container id")
    base = dict(config.get("process") or {})
    base["args"] = req.args
    base["terminal"] = req.tty
    proc = parse_process(base)
    persona = (config.get("linux") or {}).get("personality")
    if persona:  # validated at create; it applies to every process of the container
        proc.personality = PERSONALITIES[persona.get("domain", "LINUX")]
    proc.env = _merge_env(proc.env, req.env)
    if req.cwd is not None:
        if not req.cwd.startswith("/"):
            raise UsageError(f"--cwd {req.cwd} must be an absolute path")
        proc.cwd = req.cwd
    if req.user is not None:
        uid, _, gid = req.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user {req.user}: give numeric UID[:GID]")
        proc.uid = int(uid)
        proc.gid = int(gid) if gid else 0
        proc.additional_gids = []
    return proc


def exec_process(
    store: Store, container_id: str, req: ExecRequest, placed: Warmup | None = None
) -> int:
    ctr = Container.load(store, container_id)
    check("exec", ctr.status)
    proc = build_process(ctr.state.get("config") or {}, req)
    console_fd = None
    if proc.terminal:
        if req.console_socket is None:
            raise SpecError("--tty needs --console-socket (a foreground terminal is not "
                            "supported yet)")  # fmt: skip
        from reference_runtime.linux.tty import connect_console

        console_fd = connect_console(req.console_socket)
    kinds = [k for k in ctr.state.get("namespaces", []) if k in NAMESPACES]
    # The mount namespace last: once in it, /proc/<pid>/ns of the host is out of reach.
    kinds.sort(key=lambda k: (k != "user", k == "mount"))  # user first: it owns the rest
    paths = [(k, f"/proc/{ctr.pid}/ns/{NAMESPACES[k][1]}") for k in kinds]
    manager: Manager = cgroup_of(ctr)
    seccomp = None
    linux = (ctr.state.get("config") or {}).get("linux") or {}
    if linux.get("seccomp") is not None:
        from reference_runtime.linux.seccomp import compile_filter

        seccomp = compile_filter(linux["seccomp"], proc.no_new_privileges)
        if seccomp.listener is not None:
            # The exec'd process would wait on its first notified call for an agent that was
            # never told about it.
            raise SpecError("linux.seccomp: exec into a container with a seccomp listener "
                            "(SCMP_ACT_NOTIFY) is not supported yet")  # fmt: skip
    if placed is not None:
        placed.stop()  # last, so the fork's join finds the lock warm (cgroups/warmup.py)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        keep = range(3, 3 + req.preserve_fds)
        _stage1(paths, manager, proc, w, req.detach, console_fd, seccomp, keep)
    os.close(w)
    if console_fd is not None:
        os.close(console_fd)
    try:
        outcome = protocol.Outcome(protocol.receive_all(r))
    finally:
        os.close(r)
    if outcome.error is not None:
        os.waitpid(child, 0)
        raise outcome.error
    if req.pid_file is not None and outcome.pid:
        from reference_runtime.lifecycle.create import _write_atomic

        _write_atomic(os.path.abspath(req.pid_file), str(outcome.pid))
    _, status = os.waitpid(child, 0)
    return 0 if req.detach else exit_code(status)


def _stage1(paths: list[tuple[str, str]], manager: Manager, proc: Process, pipe: int,
            detach: bool, console_fd: int | None, seccomp: Filter | None,
            keep: range) -> None:  # fmt: skip
    try:
        manager.join(os.getpid())
        fds = [(kind, path, ns.open_namespace(path)) for kind, path in paths]
        for kind, path, fd in fds:
            ns.join(fd, kind, path)
            os.close(fd)
        pid = os.fork()
    except BaseException as exc:
        protocol.send_error(pipe, exc)
        os._exit(1)
    if pid == 0:
        _exec(proc, pipe, console_fd, seccomp, keep)
    protocol.send(pipe, protocol.PID, str(pid))
    os.close(pipe)
    if detach:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    os._exit(exit_code(status))


def _exec(
    proc: Process, pipe: int, console_fd: int | None, seccomp: Filter | None, keep: range
) -> None:
    try:
        if console_fd is not None:
            # In the container's mount namespace now: its /dev/ptmx is its devpts's.
            master, slave, _ = open_pty("/dev/ptmx")
            set_size(master, proc.console_size)
            send_master(console_fd, master)
            os.setsid()
            become_terminal_of(slave)
        apply_privileged(proc)
        executable = find_executable(proc.args[0], proc.env)
        if seccomp is not None and not proc.no_new_privileges:
            seccomp.load()  # needs CAP_SYS_ADMIN without no_new_privs
        apply_identity(proc)
        # CVE-2019-5736: the container's processes must not follow /proc/<pid>/exe (the host's
        # interpreter) or /proc/<pid>/fd of this one; execve makes it dumpable again.
        prctl(PR_SET_DUMPABLE, 0)
        close_inherited_fds(keep=keep)
        for fd in keep:
            os.set_inheritable(fd, True)  # --preserve-fds: handed on on purpose
        reset_for_exec()
        if seccomp is not None and proc.no_new_privileges:
            seccomp.load()  # last: only execve follows
        os.execve(executable, proc.args, environ(proc.env))
    except BaseException as exc:
        protocol.send_error(pipe, exc)
    os._exit(127)
