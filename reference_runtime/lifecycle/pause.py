"""``pause`` / ``resume``: the freezer (cgroup-v1 freezer.state, or cgroup v2 cgroup.freeze).

Which file is the freezer, and whether it is frozen, is in lifecycle/container.py: every status
needs it, and ``state`` or ``kill`` of a running container then imports nothing more.
"""

from __future__ import annotations

import os
import time

from reference_runtime.errors import SpecError, SyscallError
from reference_runtime.lifecycle.container import Container, freezer_file, is_frozen
from reference_runtime.lifecycle.status import check
from reference_runtime.linux.files import write_file

__all__ = ["freezer_file", "is_frozen", "pause", "resume", "thaw_if_frozen"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.lifecycle.store import Store


def thaw_if_frozen(state: dict[str, object]) -> None:
    """Thaws the container's cgroup if it is frozen (best effort: delete goes on regardless)."""
    where = freezer_file(state)
    if where is not None and is_frozen(state):
        try:  # noqa: SIM105 - contextlib would cost start-up time
            write_file(where[0], where[2])
        except OSError:
            pass  # tolerated: the cgroup went away with its last process


def _set(ctr: Container, frozen: bool) -> None:
    where = freezer_file(ctr.state)
    if where is None:
        raise SpecError("this host has no freezer cgroup for the container")
    path, on, off = where
    want = on if frozen else off
    try:
        write_file(path, want)
        # v1 passes through FREEZING until every task has stopped (cgroup-v1/freezer-subsystem).
        deadline = time.monotonic() + 5
        while True:
            with open(path, "rb") as f:
                if f.read().strip() == want.encode():
                    return
            if time.monotonic() > deadline:
                raise SyscallError(110, "freeze", path)
            time.sleep(0.001)
    except OSError as exc:
        if isinstance(exc, SyscallError):
            raise
        raise SyscallError(exc.errno or 0, "write", path) from None


def pause(store: Store, container_id: str) -> None:
    lock = store.lock(container_id)
    try:
        ctr = Container.load(store, container_id)
        check("pause", ctr.status)
        _set(ctr, True)
    finally:
        os.close(lock)


def resume(store: Store, container_id: str) -> None:
    lock = store.lock(container_id)
    try:
        ctr = Container.load(store, container_id)
        check("resume", ctr.status)
        _set(ctr, False)
    finally:
        os.close(lock)
