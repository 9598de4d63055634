"""``delete``: remove a stopped container (or, with --force, stop it first), then poststop.

``destroy`` is runtime.md's step 12 followed by step 13 (poststop hooks): ``delete`` uses it,
and so do ``create`` and ``start`` when a hook fails (the lifecycle "continues at step 12").
"""

from __future__ import annotations

import os

from reference_runtime.lifecycle.container import Container, is_frozen
from reference_runtime.lifecycle.kill import cgroup_of
from reference_runtime.lifecycle.status import Status, check
from reference_runtime.lifecycle.store import STATE_FILE
from reference_runtime.linux.proc import wait_gone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.lifecycle.store import Store


def delete(store: Store, container_id: str, *, force: bool = False) -> list[str]:
    """Deletes the container; returns the poststop hooks' warnings (they never fail it)."""
    lock = store.lock(container_id)
    try:
        if force and not os.path.exists(os.path.join(store.dir(container_id), STATE_FILE)):
            # A directory without state, found under the lock: left by a runtime that died
            # half-way through create (a live create holds the lock). Only --force clears it.
            store.remove(container_id)
            return []
        ctr = Container.load(store, container_id)
        check("delete --force" if force else "delete", ctr.status)
        return destroy(ctr)
    finally:
        os.close(lock)


def _sigkill(pid: int) -> None:
    try:  # noqa: SIM105 - contextlib would cost start-up time
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def destroy(ctr: Container) -> list[str]:
    """Stops every process, removes the cgroups and the state, then runs the poststop hooks."""
    manager = cgroup_of(ctr)
    if ctr.alive:
        _sigkill(ctr.pid)
    # Without a pid namespace the init's children outlive it: the cgroup knows them all.
    for pid in manager.pids():
        _sigkill(pid)
    # A paused container's processes keep the SIGKILL pending until thawed (the v1 freezer
    # does not wake them for it; cgroup-v1/freezer-subsystem.rst), as runc's delete does too.
    if is_frozen(ctr.state):
        from reference_runtime.lifecycle.pause import thaw_if_frozen

        thaw_if_frozen(ctr.state)
    wait_gone(ctr.pid, ctr.state.get("start_time"))
    manager.destroy()
    ctr.store.remove(ctr.id)
    config = ctr.state.get("config") or {}
    if not config.get("hooks"):
        return []
    from reference_runtime.process.hooks import hooks_of, run_all_warning, state_json

    state = state_json(ctr.state, Status.STOPPED, 0)
    warnings = run_all_warning(hooks_of(config, "poststop"), state)
    for warning in warnings:
        os.write(2, f"warning: {warning}\n".encode(errors="replace"))
    return warnings
