"""A container as the store knows it, with its status derived from facts on every load."""

from __future__ import annotations

import os

from reference_runtime.lifecycle.status import derive
from reference_runtime.linux.proc import is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.lifecycle.store import Store


class Container:
    __slots__ = ("id", "parent", "state", "store")

    def __init__(self, store: Store, container_id: str, state: dict[str, Any]) -> None:
        self.store = store
        self.id = container_id
        self.state = state
        # Set by a foreground run's create: stage 1, the init's parent, which exits with the
        # init's status (process/init.py); 0 otherwise.
        self.parent = 0

    @classmethod
    def load(cls, store: Store, container_id: str) -> Container:
        return cls(store, container_id, store.load(container_id))

    @property
    def pid(self) -> int:
        return int(self.state.get("pid") or 0)

    @property
    def alive(self) -> bool:
        return self.pid > 0 and is_alive(self.pid, self.state.get("start_time"))

    @property
    def status(self) -> str:
        """Never the stored label: the init's pid + start time, the fifo (runtime.md State)."""
        alive = self.alive
        fifo = alive and os.path.exists(self.store.fifo(self.id))
        frozen = False
        if alive and not fifo:
            frozen = is_frozen(self.state)
        return derive(alive, fifo, frozen)

    def public_state(self) -> dict[str, Any]:
        """The state of runtime.md, as ``state`` prints it (plus runc's extra fields)."""
        status = self.status
        out: dict[str, Any] = {
            "ociVersion": self.state.get("ociVersion", "1.0.2"),
            "id": self.id,
            "status": status,
            # runtime.md: pid is REQUIRED while created or running; runc reports 0 once stopped.
            "pid": self.pid if status != "stopped" else 0,
            "bundle": self.state["bundle"],
            "rootfs": self.state.get("rootfs", ""),
            "created": self.state.get("created", ""),
        }
        if self.state.get("annotations"):
            out["annotations"] = self.state["annotations"]
        return out


# The freezer, which every status needs (pause.py changes it): here, so that `state` and
# `kill` of a running container import nothing more.
def freezer_file(state: dict[str, object]) -> tuple[str, str, str] | None:
    """(file, value meaning frozen, value meaning thawed) of the container's freezer."""
    cg = state.get("cgroup")
    if not isinstance(cg, dict):
        return None
    paths: dict[str, str] = cg.get("paths", {})
    if "freezer" in paths:
        return paths["freezer"] + "/freezer.state", "FROZEN", "THAWED"
    if cg.get("version") == "v2" and "unified" in paths:
        return paths["unified"] + "/cgroup.freeze", "1", "0"
    return None


def is_frozen(state: dict[str, object]) -> bool:
    where = freezer_file(state)
    if where is None:
        return False
    try:
        # Bytes: a text read would import the ascii codec on every `state` (start-up cost).
        with open(where[0], "rb") as f:
            value = f.read().strip().decode(errors="replace")
    except OSError:
        return False
    return value in (where[1], "FREEZING")
