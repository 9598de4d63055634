"""``run``: create + start, and in the foreground wait for the program and delete after it.

In the foreground, stage 1 of create stays as the init's parent and exits with the init's
status (process/init.py), so the runtime waits for its own child and exits with that status,
as runc does. runc makes itself a child subreaper for it; here that would mean ctypes in the
runtime's own process, whose peak memory the benchmark compares with runc's. ``--no-subreaper``
is accepted for runc's sake and changes nothing: the runtime is never one.
"""

from __future__ import annotations

import os

from reference_runtime.lifecycle.create import Options, create
from reference_runtime.lifecycle.delete import delete
from reference_runtime.lifecycle.start import start_container
from reference_runtime.linux.proc import exit_code
from reference_runtime.linux.signals import forward_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from reference_runtime.cgroups.warmup import Warmup
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.system import System


def _wants_tty(bundle: str) -> bool:
    """Whether the bundle's config asks for a terminal (read again by create, validated)."""
    from reference_runtime import jsonio

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            process = jsonio.loads(f.read()).get("process") or {}
    except (OSError, ValueError, AttributeError):
        return False  # create reports what is wrong with it
    return process.get("terminal") is True


def wait_for(pid: int) -> int:
    """Reaps children until ``pid`` exits (the warm-up helper, if still unreaped, on the way)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # should not happen: stage 1 is our child
        except InterruptedError:
            continue
        if got == pid:
            return exit_code(status)


def run(
    store: Store,
    container_id: str,
    bundle: str,
    *,
    system: System,
    pid_file: str | None = None,
    detach: bool = False,
    debug: Callable[[str], None] | None = None,
    placed: Warmup | None = None,
    options: Options | None = None,
) -> int:
    console = None
    if not detach:
        options = options or Options()
        options.foreground = True
        if options.console_socket is None and _wants_tty(bundle):
            # A terminal in the foreground: the runtime is its own console socket and relays
            # between its stdio and the pty's master until the program exits (as runc does).
            from reference_runtime.linux.tty import console_pair

            console, options.console_fd = console_pair()
    ctr = create(store, container_id, bundle, system=system, pid_file=pid_file, debug=debug,
                 placed=placed, options=options)  # fmt: skip
    if console is not None and options is not None and options.console_fd is not None:
        os.close(options.console_fd)  # the init has its copy; ours would keep the pair open
    try:
        start_container(ctr)
    except BaseException:
        if os.path.isdir(store.dir(container_id)):
            delete(store, container_id, force=True)
        if ctr.parent:
            os.waitpid(ctr.parent, 0)  # the init is ended: stage 1 exits too
        raise
    if detach:
        return 0
    forward_to(ctr.pid)
    try:
        if console is not None:
            from reference_runtime.linux.tty import receive_master, relay

            relay(receive_master(console))
        code = wait_for(ctr.parent)
    finally:
        delete(store, container_id, force=True)
    return code
