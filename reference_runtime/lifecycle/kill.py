"""``kill``: send a signal to the init (or, with --all, to every process of the container)."""

from __future__ import annotations

import os

from reference_runtime.errors import SyscallError
from reference_runtime.lifecycle.container import Container
from reference_runtime.lifecycle.status import check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cgroups.manager import Manager
    from reference_runtime.lifecycle.store import Store


def cgroup_of(ctr: Container) -> Manager:
    """The container's cgroups, from what create recorded (never probed again)."""
    from reference_runtime.cgroups.manager import restore  # kill needs it for --all only

    cg = ctr.state.get("cgroup") or {}
    return restore(cg.get("version", "none"), cg.get("paths", {}), cg.get("dirs", []))


def kill(store: Store, container_id: str, signal: int, *, all_processes: bool = False) -> None:
    lock = store.lock(container_id)
    try:
        ctr = Container.load(store, container_id)
        check("kill", ctr.status)
        targets = [ctr.pid]
        if all_processes:
            targets = sorted(set(targets) | set(cgroup_of(ctr).pids()))
        for pid in targets:
            try:
                os.kill(pid, signal)
            except ProcessLookupError:
                continue  # tolerated: exited between the listing and the signal
            except OSError as exc:
                raise SyscallError(exc.errno or 0, "kill", f"pid {pid}") from None
    finally:
        os.close(lock)
