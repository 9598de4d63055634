"""``create``: validate → plan → fork the init → record the state (design.md §2).

Nothing touches the kernel until the config has been validated and the whole plan built. From
the moment the id is reserved, every side effect is registered with a rollback, so a failure
at any later point (a mount the kernel refuses, the init dying) leaves no process, cgroup, state
directory, fifo or pid file behind.
"""

from __future__ import annotations

import os
import time

from reference_runtime.cgroups.manager import cgroup_path, delegation_owner, manager_for, probe
from reference_runtime.errors import ContainerInitError, SpecError, SyscallError
from reference_runtime.lifecycle.container import Container
from reference_runtime.lifecycle.store import check_id
from reference_runtime.linux.files import write_file
from reference_runtime.linux.proc import start_time, wait_gone
from reference_runtime.process import protocol
from reference_runtime.process.hooks import hooks_of, run_all, run_all_warning, state_json
from reference_runtime.process.init import InitPlan, stage1
from reference_runtime.rootfs.plan import MountStep, plan_rootfs
from reference_runtime.spec.load import load_bundle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from reference_runtime.cgroups.warmup import Warmup
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.seccomp import Filter
    from reference_runtime.linux.system import System
    from reference_runtime.process.hooks import Hook
    from reference_runtime.spec.model import Config

SPEC_VERSION = "1.3.0"


class Options:
    """The command line's say in how the container is made (create and run)."""

    __slots__ = ("console_fd", "console_socket", "foreground", "no_new_keyring", "no_pivot",
                 "preserve_fds")  # fmt: skip

    def __init__(
        self,
        *,
        no_pivot: bool = False,
        preserve_fds: int = 0,
        console_socket: str | None = None,
        no_new_keyring: bool = False,
    ) -> None:
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.console_socket = console_socket
        self.no_new_keyring = no_new_keyring
        # A connected socket for the pty's master, made by a foreground `run` (lifecycle/run.py)
        self.console_fd: int | None = None
        # A foreground `run`: stage 1 stays as the init's parent (Container.parent)
        self.foreground = False


def build_plan(
    cfg: Config, container_id: str, state_dir: str, options: Options | None = None
) -> InitPlan:
    """The whole of what the children will do (pure apart from probing cgroup mounts)."""
    if cfg.process is None:
        # runtime.md lets create validate early (runtime.create.10): start would have nothing
        # to run.
        raise SpecError("process is required: there would be nothing to start")
    hierarchies = probe()
    manager = manager_for(hierarchies, cgroup_path(cfg.cgroups_path, container_id))
    if manager.version == "v2":  # never a v1 cgroup (config-linux.md, cgroup ownership)
        manager.owner = delegation_owner(cfg)
    create = [ns.type for ns in cfg.namespaces if ns.path is None]
    join = [(ns.type, ns.path) for ns in cfg.namespaces if ns.path is not None]
    opts = options or Options()
    if manager.version == "v1":
        sources = {k: v for k, v in manager.paths.items() if k != "unified"}
        rootfs = plan_rootfs(cfg, sources, cgroup2=False, no_pivot=opts.no_pivot)
    else:
        # cgroup v2: a cgroup namespace gets its own cgroup2 mount, otherwise a bind of its dir.
        own = {} if "cgroup" in create else {"": manager.paths.get("unified", "")}
        rootfs = plan_rootfs(cfg, own if own.get("") else {}, cgroup2=True, no_pivot=opts.no_pivot)
    plan = InitPlan(
        join=join, create=create, cgroup=manager, rootfs=rootfs, hostname=cfg.hostname,
        domainname=cfg.domainname, process=cfg.process, state_dir=state_dir,
        time_offsets=cfg.time_offsets,
    )  # fmt: skip
    plan.preserve_fds = opts.preserve_fds
    plan.foreground = opts.foreground
    if not opts.no_new_keyring:
        plan.keyring = container_id
    if cfg.seccomp is not None:
        from reference_runtime.linux.seccomp import compile_filter

        plan.seccomp = compile_filter(cfg.seccomp, cfg.process.no_new_privileges)
    if "user" in create:
        plan.user_maps = (cfg.uid_mappings, cfg.gid_mappings)
    if cfg.process.terminal and opts.console_socket is None and opts.console_fd is None:
        raise SpecError("process.terminal needs --console-socket (a foreground terminal is "
                        "not supported yet)")  # fmt: skip
    if opts.console_socket is not None and not cfg.process.terminal:
        raise SpecError("--console-socket is for a process.terminal container only")
    if cfg.raw.get("hooks"):
        plan.create_container_hooks = hooks_of(cfg.raw, "createContainer")
        plan.start_container_hooks = hooks_of(cfg.raw, "startContainer")
        plan.hook_state = hook_base(cfg, container_id)
    return plan


def hook_base(cfg: Config, container_id: str) -> dict[str, object]:
    """What every hook's state carries besides status and pid."""
    return {"ociVersion": SPEC_VERSION, "id": container_id, "bundle": cfg.bundle,
            "annotations": cfg.annotations}  # fmt: skip


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "write", path) from None


def create(
    store: Store,
    container_id: str,
    bundle: str,
    *,
    system: System,
    pid_file: str | None = None,
    debug: Callable[[str], None] | None = None,
    placed: Warmup | None = None,
    options: Options | None = None,
) -> Container:
    """Creates the container; ``placed`` (the cgroup warm-up helper) is stopped just before
    stage 1 is put in its cgroups, whose join then finds the kernel's lock warm."""
    check_id(container_id)
    cfg = load_bundle(bundle)
    state_dir = store.dir(container_id)
    plan = build_plan(cfg, container_id, state_dir, options)
    for warning in cfg.process.warnings if cfg.process is not None else []:
        os.write(2, f"warning: {warning}\n".encode(errors="replace"))
    if cfg.net_devices:
        from reference_runtime.lifecycle import netdevices

        netdevices.check_present(cfg.net_devices)  # read-only: before anything is made
    if debug is not None:
        for line in plan.describe():
            debug(line)
    undo: list[Callable[[], None]] = []
    reserved = False
    if options is not None and options.console_socket is not None:
        from reference_runtime.linux.tty import connect_console

        plan.console_fd = connect_console(options.console_socket)
        undo.append(_closer(plan.console_fd))
    elif options is not None and options.console_fd is not None:
        plan.console_fd = options.console_fd
    try:
        store.reserve(container_id)
        reserved = True
        undo.append(lambda: store.remove(container_id))
        # Held until create returns: a concurrent delete waits instead of meeting a half-made
        # container (and one that finds no state afterwards knows the directory is stale).
        lock = store.lock(container_id)
        undo.append(_closer(lock))
        plan.lock_fd = lock
        fifo = store.fifo(container_id)
        try:
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # the umask must not take away the init's write access
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "mkfifo", fifo) from None
        runtime_hooks = hooks_of(cfg.raw, "prestart") + hooks_of(cfg.raw, "createRuntime")
        idmapped = any(isinstance(s, MountStep) and s.idmap is not None for s in plan.rootfs)
        if idmapped:
            # Made here, on the host, for the init to move into place (rootfs/idmap.py).
            from reference_runtime.rootfs.idmap import close_trees, open_trees

            undo.append(lambda: close_trees(plan.rootfs, system))
            open_trees(plan.rootfs, system)

        def make() -> None:
            # While stage 1 makes the namespaces (two cores: the mkdirs wait out the warm-up's
            # grace period meanwhile).
            plan.cgroup.create(cfg.resources)
            undo.append(plan.cgroup.destroy)

        def place(init: int) -> None:
            if placed is not None:
                placed.stop()  # so the join finds the lock warm (cgroups/warmup.py)
            plan.cgroup.join(init)

        pid, started, parent = _spawn(plan, system, undo, runtime_hooks,
                                      hook_base(cfg, container_id), make, place)  # fmt: skip
        if idmapped:
            close_trees(plan.rootfs, system)  # the init holds its own copies
        if cfg.net_devices:
            # Into the init's network namespace while it waits for start; each move registers
            # its way back.
            netdevices.move_in(cfg.net_devices, pid, undo)
        state = {
            "ociVersion": SPEC_VERSION,
            "id": container_id,
            "pid": pid,
            "start_time": started,
            "bundle": cfg.bundle,
            "rootfs": cfg.root_path,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "annotations": cfg.annotations,
            "cgroup": {
                "version": plan.cgroup.version,
                "paths": plan.cgroup.paths,
                "dirs": plan.cgroup.dirs,
            },
            "namespaces": [ns.type for ns in cfg.namespaces],
            "config": cfg.raw,
        }
        store.save(container_id, state)
        if pid_file is not None:
            # runc writes the pid file last, atomically: its presence means create succeeded.
            _write_atomic(os.path.abspath(pid_file), str(pid))
        os.close(lock)
    except BaseException:
        for action in reversed(undo):
            try:
                action()
            except Exception:  # best effort: the first error is the one the user sees
                continue
        if plan.hook_state and reserved:
            # runtime.md "Lifecycle": a failed create continues at step 12 (destroyed, above)
            # and then step 13, the poststop hooks.
            stopped = state_json(plan.hook_state, "stopped", 0)
            for warning in run_all_warning(hooks_of(cfg.raw, "poststop"), stopped):
                os.write(2, f"warning: {warning}\n".encode())
        raise
    ctr = Container(store, container_id, state)
    ctr.parent = parent
    return ctr


def _spawn(
    plan: InitPlan,
    system: System,
    undo: list[Callable[[], None]],
    runtime_hooks: list[Hook],
    base: dict[str, object],
    make: Callable[[], None],
    place: Callable[[int], None],
) -> tuple[int, int, int]:
    """Forks stage 1; returns the init's pid and start time once it is ready, and stage 1's pid
    in a foreground run (it stays as the init's parent; else 0, reaped).

    Stage 1 is forked before the container's cgroups exist: ``make`` makes them while stage 1
    makes the namespaces; ``place`` puts the init in them once stage 1 says which pid it got,
    and the placed pipe says so to the init, which makes a cgroup namespace and goes on only
    after that. So the init says nothing before its pid is known, and stage 1 is never in the
    container's cgroups.

    With prestart/createRuntime hooks, the init stops after its mounts and waits on a control
    pipe while the runtime runs them (process/protocol.py). With a seccomp listener, the init's
    notify fd comes over a socket pair and goes on to the agent with the container process
    state (``base`` holds the state's id, bundle and annotations).
    """
    seccomp_pair = None
    if plan.seccomp is not None and plan.seccomp.listener is not None:
        from reference_runtime.linux.seccomp import notify_fd_channel

        seccomp_pair = notify_fd_channel()
        plan.seccomp_sock = seccomp_pair[1]
    r, w = os.pipe()
    control = os.pipe() if runtime_hooks else None
    if control is not None:
        plan.sync_fd = control[0]
    user_control = os.pipe() if plan.user_maps is not None else None
    if user_control is not None:
        plan.user_sync_fd = user_control[0]
    placed = os.pipe()
    plan.placed_fd = placed[0]
    pipes = (control, user_control, placed)
    try:
        child = os.fork()
    except OSError as exc:
        for fd in (r, w, *(control or ()), *(user_control or ()), *placed, *(seccomp_pair or ())):
            os.close(fd)
        raise SyscallError(exc.errno or 0, "fork") from None
    if child == 0:
        os.close(r)
        if seccomp_pair is not None:
            os.close(seccomp_pair[0])
        for pair in pipes:
            if pair is not None:
                os.close(pair[1])
        stage1(plan, w, system)  # never returns
    os.close(w)
    if seccomp_pair is not None:
        os.close(seccomp_pair[1])
    for pair in pipes:
        if pair is not None:
            os.close(pair[0])
    pid: int | None = None
    started: int | None = None
    ready = False
    reader = protocol.Reader(r)
    try:
        make()
        while not ready:
            msg = reader.next()
            if msg is None:
                break
            if msg[0] == protocol.PID:
                pid = int(msg[1])
                started = start_time(pid)
                if plan.foreground:
                    undo.append(_reaper(child))  # after the init is ended (undo runs reversed)
                undo.append(_killer(pid, started))
                place(pid)
                os.write(placed[1], b"g")
                if not plan.foreground:
                    os.waitpid(child, 0)  # it exits once it has sent the pid
                    child = 0
            elif msg[0] == protocol.USERNS and user_control is not None:
                assert plan.user_maps is not None
                _write_id_maps(child, *plan.user_maps)
                os.write(user_control[1], b"g")
            elif msg[0] == protocol.MOUNTED and control is not None:
                assert pid is not None
                run_all(runtime_hooks, state_json(plan.hook_state, "creating", pid))
                os.write(control[1], b"g")
            elif msg[0] == protocol.SECCOMP and seccomp_pair is not None:
                assert pid is not None and plan.seccomp is not None
                _serve_listener(plan.seccomp, seccomp_pair[0], base, pid)
            elif msg[0] == protocol.READY:
                ready = True
            elif msg[0] == protocol.ERROR:
                raise protocol.error_of(msg)
    finally:
        if seccomp_pair is not None:
            os.close(seccomp_pair[0])
        for pair in pipes:
            if pair is not None:
                os.close(pair[1])  # end of file for a child still waiting: it exits
        if pid is None:
            # A failure before the init's pid came: it may have been forked all the same, and
            # ends at the end of file above. Once neither child holds the pipe, both are ending.
            late = None
            while (msg := reader.next()) is not None:
                if msg[0] == protocol.PID:
                    late = int(msg[1])
            if late is not None:
                wait_gone(late, None)
        os.close(r)
        if child and not (plan.foreground and pid is not None):
            os.waitpid(child, 0)  # else the rollback reaps it, once the init is ended
    if not ready or pid is None or started is None:
        raise ContainerInitError("the container's init exited before it was ready")
    return pid, started, child


def _serve_listener(seccomp: Filter, sock: int, base: dict[str, object], pid: int) -> None:
    """config-linux.md "The Container Process State": the agent at listenerPath gets the
    state (status "creating", the init's pid as the runtime sees it) and the notify fd."""
    from reference_runtime import jsonio
    from reference_runtime.linux.seccomp import (
        SECCOMP_FD_NAME,
        receive_notify_fd,
        send_to_listener,
    )

    assert seccomp.listener is not None
    state: dict[str, object] = {
        "ociVersion": base["ociVersion"],
        "id": base["id"],
        "status": "creating",
        "pid": pid,
        "bundle": base["bundle"],
    }
    if base.get("annotations"):
        state["annotations"] = base["annotations"]
    doc: dict[str, object] = {"ociVersion": SPEC_VERSION, "fds": [SECCOMP_FD_NAME], "pid": pid}
    if seccomp.metadata is not None:
        doc["metadata"] = seccomp.metadata
    doc["state"] = state
    fd = receive_notify_fd(sock)
    try:
        send_to_listener(seccomp.listener, jsonio.dumps(doc).encode(), fd)
    finally:
        os.close(fd)  # the agent has its own copy now; the runtime keeps none


def _write_id_maps(
    pid: int, uids: list[tuple[int, int, int]], gids: list[tuple[int, int, int]]
) -> None:
    """user_namespaces(7): one write each of "inside outside count" lines, by a process with
    CAP_SETUID/CAP_SETGID in the parent namespace (the runtime), before the child is root."""
    for name, maps in (("uid_map", uids), ("gid_map", gids)):
        lines = "".join(f"{inside} {outside} {count}\n" for inside, outside, count in maps)
        write_file(f"/proc/{pid}/{name}", lines)


def _closer(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


def _reaper(child: int) -> Callable[[], None]:
    def reap() -> None:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.waitpid(child, 0)
        except ChildProcessError:
            pass  # tolerated: already reaped by a wait for any child

    return reap


def _killer(pid: int, started: int | None) -> Callable[[], None]:
    return lambda: _kill_init(pid, started)


def _kill_init(pid: int, started: int | None) -> None:
    from reference_runtime.linux.proc import is_alive

    if is_alive(pid, started):
        try:
            os.kill(pid, 9)  # SIGKILL
        except ProcessLookupError:
            return
    wait_gone(pid, started)
