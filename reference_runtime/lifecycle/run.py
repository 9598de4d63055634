"""``run``: create + start, and in the foreground wait for the program and delete after it.

In the foreground the runtime marks itself a child subreaper (PR_SET_CHILD_SUBREAPER): when
stage 1 exits, the init is re-parented to the runtime instead of the host's init, so the
runtime can wait for it and exit with its status, as runc does.
"""

from __future__ import annotations

import os

from reference_runtime.lifecycle.create import create
from reference_runtime.lifecycle.delete import delete
from reference_runtime.lifecycle.start import start_container
from reference_runtime.linux import constants as c
from reference_runtime.linux import libc
from reference_runtime.linux.signals import forward_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from reference_runtime.cgroups.warmup import Warmup
    from reference_runtime.lifecycle.create import Options
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.system import System


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


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
    """Reaps children until ``pid`` exits (orphans re-parented to us are reaped on the way)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # should not happen: the init is our child
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
    if not detach:
        libc.prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    console = None
    if not detach and (options is None or options.console_socket is None) and _wants_tty(bundle):
        # A terminal in the foreground: the runtime is its own console socket and relays
        # between its stdio and the pty's master until the program exits (as runc does).
        from reference_runtime.lifecycle.create import Options
        from reference_runtime.linux.tty import console_pair

        options = options or Options()
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
        raise
    if detach:
        return 0
    forward_to(ctr.pid)
    try:
        if console is not None:
            from reference_runtime.linux.tty import receive_master, relay

            relay(receive_master(console))
        code = wait_for(ctr.pid)
    finally:
        delete(store, container_id, force=True)
    return code
