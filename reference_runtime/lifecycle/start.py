"""``start``: open the exec fifo for reading, which lets the blocked init execve the program.

What the init writes into the fifo (process/init.py): ``0`` once ``start`` has opened it, then
either ``E<reason>`` (a startContainer hook or execve failed) or nothing: the fifo closes when
execve succeeds (O_CLOEXEC), which is when the poststart hooks may run (runtime.md step 9).
"""

from __future__ import annotations

import os
import select

from reference_runtime.errors import ContainerInitError, SyscallError
from reference_runtime.lifecycle.container import Container
from reference_runtime.lifecycle.status import check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.lifecycle.store import Store


def start(store: Store, container_id: str) -> Container:
    lock = store.lock(container_id)
    try:
        ctr = Container.load(store, container_id)
        check("start", ctr.status)
        start_container(ctr)
        return ctr
    finally:
        os.close(lock)


def start_container(ctr: Container) -> None:
    """Releases the init, then runs the poststart hooks; on failure destroys the container."""
    try:
        release_init(ctr)
        config = ctr.state.get("config") or {}
        if config.get("hooks"):
            from reference_runtime.process.hooks import hooks_of, run_all, state_json

            state = state_json(ctr.state, "running", ctr.pid)
            run_all(hooks_of(config, "poststart"), state)
    except ContainerInitError as exc:
        if not isinstance(exc, _StartFailed):
            raise  # the init died on its own: the container is stopped, delete removes it
        from reference_runtime.lifecycle.delete import destroy

        destroy(ctr)
        raise
    except Exception:
        # runtime.md steps 7 and 9 (v1.3.0): a failing startContainer or poststart hook stops
        # the container, which is destroyed (step 12) and its poststop hooks run (step 13).
        from reference_runtime.lifecycle.delete import destroy

        destroy(ctr)
        raise


def release_init(ctr: Container) -> None:
    fifo = ctr.store.fifo(ctr.id)
    try:
        # O_NONBLOCK: opening for reading must not wait for a writer (fifo(7)); poll does.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "open", fifo) from None
    received = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(50):
                data = os.read(fd, 4096)
                if not data:
                    break  # the writer came and went: executed, or failed and said why
                received += data
            elif not ctr.alive:
                break
    finally:
        os.close(fd)
    # Gone once read: its absence is what tells "running" from "created" (container.py).
    try:  # noqa: SIM105 - contextlib would cost start-up time
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    if not received:
        raise ContainerInitError("the container's init died before it could start")
    if received[1:2] == b"E":
        raise _StartFailed(received[2:].decode(errors="replace"))


class _StartFailed(ContainerInitError):
    """A startContainer hook or the program's execve failed: the container must go."""
