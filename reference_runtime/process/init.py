"""The two children of ``create``: stage 1 (the namespaces only a fork enters) and the
container's init (the rest of the container).

Both run in a forked copy of the runtime and never return: they end in ``os._exit`` or
``execve``. Everything they do comes from an ``InitPlan`` the parent built and validated, and
every failure is sent to the parent as (errno, message) before exiting (process/protocol.py).
"""

from __future__ import annotations

import os

from reference_runtime.errors import SyscallError
from reference_runtime.lifecycle.store import FIFO
from reference_runtime.linux import namespaces as ns
from reference_runtime.linux.constants import MS_BIND, PR_SET_DUMPABLE
from reference_runtime.linux.libc import join_session_keyring, prctl
from reference_runtime.linux.proc import close_inherited_fds
from reference_runtime.linux.signals import reset_for_exec
from reference_runtime.linux.tty import become_terminal_of, open_pty, send_master, set_size
from reference_runtime.process import protocol
from reference_runtime.process.attrs import (
    apply_identity,
    apply_privileged,
    environ,
    find_executable,
)
from reference_runtime.process.hooks import Hook, HookError, run_all, state_json
from reference_runtime.rootfs.plan import MountStep, PivotRoot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.cgroups.manager import Manager
    from reference_runtime.linux.seccomp import Filter
    from reference_runtime.linux.system import System
    from reference_runtime.rootfs.plan import Step
    from reference_runtime.spec.model import Process


class InitPlan:
    """Everything the children do, decided before the first fork."""

    __slots__ = (
        "cgroup",
        "console_fd",
        "create",
        "create_container_hooks",
        "domainname",
        "foreground",
        "hook_state",
        "hostname",
        "join",
        "keyring",
        "lock_fd",
        "placed_fd",
        "preserve_fds",
        "process",
        "rootfs",
        "seccomp",
        "seccomp_sock",
        "start_container_hooks",
        "state_dir",
        "state_fd",
        "sync_fd",
        "time_offsets",
        "user_maps",
        "user_sync_fd",
    )  # fmt: skip

    def __init__(self, *, join: list[tuple[str, str]], create: list[str], cgroup: Manager,
                 rootfs: list[Step], hostname: str | None, domainname: str | None,
                 process: Process, state_dir: str,
                 time_offsets: dict[str, dict[str, int]]) -> None:  # fmt: skip
        self.join = join  # (type, path) to setns into, in this order
        self.create = create  # types to unshare
        self.cgroup = cgroup
        self.rootfs = rootfs
        self.hostname = hostname
        self.domainname = domainname
        self.process = process
        self.state_dir = state_dir
        self.time_offsets = time_offsets
        # Hooks the init runs itself, the state they are given, and the read end of the control
        # pipe when the runtime runs prestart/createRuntime hooks mid-way (protocol.py).
        self.create_container_hooks: list[Hook] = []
        self.start_container_hooks: list[Hook] = []
        self.hook_state: dict[str, Any] = {}
        self.sync_fd: int | None = None
        self.preserve_fds = 0  # --preserve-fds: fds 3..3+N-1 stay open in the program
        self.console_fd: int | None = None  # --console-socket, connected by the runtime
        # A new user namespace: its (containerID, hostID, size) maps, written by the runtime
        # while stage 1 waits on user_sync_fd.
        self.user_maps: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None = None
        self.user_sync_fd: int | None = None
        # The read end of the pipe on which the runtime says the init is in its cgroups (it
        # makes them while stage 1 makes the namespaces, and puts the init in them by pid).
        self.placed_fd = -1
        # A foreground run: stage 1 stays as the init's parent and exits with its status.
        self.foreground = False
        self.state_fd = -1  # opened by stage 1, while still privileged on the host
        # The runtime's flock on the state directory: a copy in a child would keep it held
        # (flock(2) belongs to the open file), so stage 1 closes it first.
        self.lock_fd = -1
        self.keyring: str | None = None  # the session keyring to join (None: --no-new-keyring)
        self.seccomp: Filter | None = None  # compiled by the runtime, loaded before execve
        # With a seccomp listener: the init's end of the socket pair its notify fd crosses.
        self.seccomp_sock = -1

    def describe(self) -> list[str]:
        lines = [f"join {kind} namespace {path}" for kind, path in self.join]
        if self.create:
            lines.append("unshare " + " ".join(self.create))
        lines += [step.describe() for step in self.rootfs]
        if self.hostname is not None:
            lines.append(f"sethostname {self.hostname}")
        if self.domainname is not None:
            lines.append(f"setdomainname {self.domainname}")
        lines.append("exec " + " ".join(self.process.args))
        return lines


def _order(join: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # The user namespace first (it owns the others, user_namespaces(7)); the mount namespace
    # last: after it, the other namespace paths may no longer resolve.
    return sorted(join, key=lambda item: (item[0] != "user", item[0] == "mount"))


def _fifo_through_proc(plan: InitPlan) -> bool:
    """Whether the container gets a procfs at /proc, through which the init can reopen the
    exec fifo from an O_PATH descriptor of the fifo alone."""
    return any(
        isinstance(step, MountStep) and step.mount.type == "proc"
        and step.mount.destination.rstrip("/") == "/proc"
        for step in plan.rootfs
    )  # fmt: skip


# The namespaces a process enters only through its next fork (pid_namespaces(7),
# time_namespaces(7)), and the user namespace that must own them: stage 1 makes or joins these
# and forks the init into them; the init makes or joins the rest itself.
STAGE1_NAMESPACES = ("user", "pid", "time")


def stage1(plan: InitPlan, pipe: int, system: System) -> None:
    """Makes or joins the user, pid and time namespaces, then forks the init (pid 1 of a new
    pid namespace), which makes the rest. In a foreground run it stays as the init's parent
    and exits with its status; otherwise it exits once it has sent the init's pid."""
    try:
        if plan.lock_fd >= 0:
            os.close(plan.lock_fd)
        # As host root still: a user namespace's root may not even search the bundle's parents.
        if _fifo_through_proc(plan):
            # Only the fifo itself, as runc does: an O_PATH of a host directory in the init is
            # what CVE-2024-21626 was made of (cwd /proc/self/fd/N, /proc/<init>/fd/N).
            fifo_path = os.path.join(plan.state_dir, FIFO)
            plan.state_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
        else:
            plan.state_fd = os.open(plan.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # Every path is opened now, as host root: inside a joined user namespace some would no
        # longer be ours to open. The init joins its share of them.
        fds = [(kind, path, ns.open_namespace(path)) for kind, path in _order(plan.join)]
        for kind, path, fd in fds:
            if kind not in STAGE1_NAMESPACES:
                continue
            ns.join(fd, kind, path)
            os.close(fd)
            if kind == "user":
                # setns(2) keeps our host ids, unmapped in the joined namespace: files made
                # with them fail with EOVERFLOW. Its root (the namespace's own ids) instead.
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        if "user" in plan.create:
            # user_namespaces(7): created alone first, so that the namespaces made next are
            # owned by it; the runtime writes uid_map/gid_map from outside, then we are root.
            ns.unshare(["user"])
            protocol.send(pipe, protocol.USERNS)
            assert plan.user_sync_fd is not None
            if os.read(plan.user_sync_fd, 1) != b"g":
                os._exit(1)
            os.close(plan.user_sync_fd)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        ns.unshare([kind for kind in plan.create if kind in STAGE1_NAMESPACES and kind != "user"])
        if "time" in plan.create and plan.time_offsets:
            # time_namespaces(7): offsets are written before any process enters the namespace
            # (the next fork's child does).
            lines = "".join(f"{clock} {v['secs']} {v['nanosecs']}\n"
                            for clock, v in plan.time_offsets.items())  # fmt: skip
            system.write("/proc/self/timens_offsets", lines)
        pid = os.fork()
    except BaseException as exc:
        protocol.send_error(pipe, exc)
        os._exit(1)
    if pid == 0:
        rest = [(kind, path, fd) for kind, path, fd in fds if kind not in STAGE1_NAMESPACES]
        container_init(plan, pipe, system, rest)  # never returns
    code = 0
    try:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            protocol.send(pipe, protocol.PID, str(pid))
        except OSError:
            pass  # the runtime has stopped listening (an error came first): the init ends too
        if plan.foreground:
            code = _parent_of(pid)
    finally:
        # A forked copy must never unwind into the runtime's own code and its rollback.
        os._exit(code)


def _parent_of(init: int) -> int:
    """A foreground run's stage 1: waits for the init and returns its status for the runtime
    to read as its own, so the runtime never adopts it (no PR_SET_CHILD_SUBREAPER, which the
    runtime could only set through ctypes, at ~300 KB of its peak memory).

    Stage 1 is in the host's namespaces (but for the container's user namespace, if it has
    one) and in the runtime's cgroups: not counted against the container's pids, not reached
    by ``kill --all``, not listed by ``ps``, and out of sight of the container, whose pid
    namespace is below it.
    """
    import _signal

    from reference_runtime.linux.proc import exit_code
    from reference_runtime.linux.signals import FORWARDED, SIGNALS

    # What a terminal or a supervisor sends the run's process group the runtime passes on to
    # the init, so stage 1, still the init's parent, must not die of it first; nor stop for
    # job control while it waits.
    for name in (*FORWARDED, "TSTP", "TTIN", "TTOU"):
        _signal.signal(SIGNALS[name], _signal.SIG_IGN)
    os.closerange(3, 1 << 20)  # the init has its own copies; ours would hold the pipes open
    _, status = os.waitpid(init, 0)
    return exit_code(status)


def _console(plan: InitPlan, system: System) -> int:
    """The pty for process.terminal, from the container's devpts; /dev/console is its slave
    (config-linux.md "Default Devices"). The master goes to the console socket."""
    assert plan.console_fd is not None
    ptmx = next(
        (s.root + "/dev/pts/ptmx" for s in plan.rootfs if isinstance(s, PivotRoot)), "/dev/ptmx"
    )
    master, slave, number = open_pty(ptmx)
    set_size(master, plan.process.console_size)
    console = ptmx.rsplit("/pts/", 1)[0] + "/console"
    if system.lstat_kind(console) is None:
        system.touch(console)
    system.mount(ptmx.rsplit("/", 1)[0] + f"/{number}", console, None, MS_BIND, None)
    send_master(plan.console_fd, master)
    return slave


def _load_seccomp(plan: InitPlan, pipe: int) -> None:
    """Loads the filter; a notify fd goes to the runtime, which passes it to the agent."""
    assert plan.seccomp is not None
    fd = plan.seccomp.load()
    if fd < 0:
        return
    from reference_runtime.linux.seccomp import send_notify_fd

    send_notify_fd(plan.seccomp_sock, fd)
    os.close(fd)  # the runtime holds it now; the program must not
    os.close(plan.seccomp_sock)
    protocol.send(pipe, protocol.SECCOMP)


def container_init(
    plan: InitPlan, pipe: int, system: System, joins: list[tuple[str, str, int]]
) -> None:
    """Makes or joins the namespaces stage 1 left to it (``joins``: opened by stage 1, mount
    last), builds the container around this process, reports ready, waits for start, execs."""
    try:
        for kind, path, fd in joins:
            ns.join(fd, kind, path)
            os.close(fd)
        ns.unshare([k for k in plan.create if k not in STAGE1_NAMESPACES and k != "cgroup"])
        # The runtime puts this process in the container's cgroups, then says so: a new cgroup
        # namespace is rooted at the cgroup its maker is in, and nothing may fork before.
        if os.read(plan.placed_fd, 1) != b"g":
            os._exit(1)  # the runtime gave up (its cgroups failed); it reports why
        os.close(plan.placed_fd)
        if "cgroup" in plan.create:
            ns.unshare(["cgroup"])
        os.setsid()
        # Python's own SIGINT handler would turn a signal to the waiting init into a traceback;
        # with default dispositions it behaves like any init (pid_namespaces(7)).
        reset_for_exec()
        close_inherited_fds(keep=range(3, 3 + plan.preserve_fds))
        for fd in range(3, 3 + plan.preserve_fds):
            os.set_inheritable(fd, True)  # --preserve-fds: handed on to the program on purpose
        proc = plan.process
        # Opened by stage 1 while the host's tree was visible; reaches the fifo after pivot_root.
        state_fd = plan.state_fd
        if "network" in plan.create:
            from reference_runtime.linux.libc import set_link_up

            set_link_up("lo")  # a new network namespace's loopback starts down
        if plan.keyring is not None:
            join_session_keyring(plan.keyring)
        apply_privileged(proc)
        if plan.hostname is not None:
            system.sethostname(plan.hostname)
        if plan.domainname is not None:
            system.setdomainname(plan.domainname)
        pivot = next(i for i, step in enumerate(plan.rootfs) if isinstance(step, PivotRoot))
        for step in plan.rootfs[:pivot]:
            step.execute(system)
        slave = -1
        if plan.console_fd is not None:
            slave = _console(plan, system)
        if plan.sync_fd is not None:
            # runtime.md steps 3-4: the runtime runs prestart and createRuntime hooks now.
            protocol.send(pipe, protocol.MOUNTED)
            if os.read(plan.sync_fd, 1) != b"g":
                os._exit(1)  # the runtime gave up (a hook failed); it reports why
            os.close(plan.sync_fd)
        if plan.create_container_hooks:
            # Step 5: in the container's namespaces, before pivot_root.
            run_all(
                plan.create_container_hooks, state_json(plan.hook_state, "creating", os.getpid())
            )
        for step in plan.rootfs[pivot:]:
            step.execute(system)
        env = proc.env
        executable = find_executable(proc.args[0], env)
        if not os.path.isdir(proc.cwd):
            os.makedirs(proc.cwd, 0o755)  # runc creates a missing cwd too
        # With a listener the agent gets the notify fd during create (config-linux.md "The
        # Container Process State" is sent with status "creating"): the filter cannot wait.
        listening = plan.seccomp is not None and plan.seccomp.listener is not None
        if plan.seccomp is not None and not proc.no_new_privileges:
            # Without no_new_privs, seccomp(2) needs CAP_SYS_ADMIN: load while we have it.
            _load_seccomp(plan, pipe)
        apply_identity(proc)
        if listening and proc.no_new_privileges:
            _load_seccomp(plan, pipe)
        # CVE-2019-5736: a process exec'd into the created container must not follow
        # /proc/1/exe to the host's interpreter (nor /proc/1/fd): non-dumpable until execve,
        # which makes it dumpable again (prctl(2) PR_SET_DUMPABLE).
        prctl(PR_SET_DUMPABLE, 0)
        protocol.send(pipe, protocol.READY)
        os.close(pipe)
    except BaseException as exc:
        protocol.send_error(pipe, exc)
        os._exit(1)
    fifo = -1
    try:
        # Blocks until `start` opens the fifo for reading (fifo(7)). Reopened through the
        # container's procfs when there is one (proc(5): /proc/self/fd/N of an O_PATH fd).
        if _fifo_through_proc(plan):
            fifo = os.open(f"/proc/self/fd/{state_fd}", os.O_WRONLY | os.O_CLOEXEC)
        else:
            fifo = os.open(FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=state_fd)
        os.write(fifo, b"0")
        os.close(state_fd)
        if slave >= 0:
            become_terminal_of(slave)
        if plan.start_container_hooks:
            # runtime.md step 7: after start is asked for, before the program, in the container.
            run_all(plan.start_container_hooks,
                    state_json(plan.hook_state, "created", os.getpid()))  # fmt: skip
        reset_for_exec()
        if plan.seccomp is not None and proc.no_new_privileges and not listening:
            # As late as can be: from here on the filter binds the init too, and only execve
            # (and a write of the error, if it fails) follows.
            plan.seccomp.load()
        # On success the fifo closes with execve (O_CLOEXEC): `start` reads that as "executed".
        os.execve(executable, proc.args, environ(env))
    except HookError as exc:
        message = str(exc)
    except OSError as exc:
        message = str(SyscallError(exc.errno or 0, "execve", proc.args[0]))
    # `start` reports what went wrong; stderr if it cannot be told.
    try:
        os.write(fifo, b"E" + message.encode(errors="replace"))
    except OSError:
        os.write(2, f"failed to start container: {message}\n".encode(errors="replace"))
    os._exit(127)
