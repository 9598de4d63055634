"""Status (runtime.md "State") and which operation is allowed from which status.

``Status`` is a closed set of string constants rather than an ``enum.Enum``: ``import enum``
costs several milliseconds at start-up (design.md §5) and the values are written to JSON as
plain strings anyway. ``Status.ALL`` lists them; ``check`` is the one gate every verb passes.
"""

from __future__ import annotations

from reference_runtime.errors import InvalidTransition


class Status:
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    ALL = (CREATING, CREATED, RUNNING, STOPPED, PAUSED)


# operation → the statuses it may start from (runtime.md "Operations"). delete without --force
# of anything but a stopped container MUST error (runtime.md "Delete"); runc and crun deviate.
ALLOWED: dict[str, tuple[str, ...]] = {
    "start": (Status.CREATED,),
    "kill": (Status.CREATED, Status.RUNNING, Status.PAUSED),
    "delete": (Status.STOPPED,),
    "delete --force": Status.ALL,
    "exec": (Status.CREATED, Status.RUNNING),
    "pause": (Status.RUNNING,),
    "resume": (Status.PAUSED,),
    "state": Status.ALL,
}

# What each successful operation leads to (for the model in unit tests and for docs).
RESULT: dict[str, str | None] = {
    "start": Status.RUNNING,
    "kill": None,  # depends on the signal and the program
    "delete": None,  # the container no longer exists
    "delete --force": None,
    "exec": None,
    "pause": Status.PAUSED,
    "resume": Status.RUNNING,
    "state": None,
}


def check(operation: str, status: str) -> None:
    allowed = ALLOWED[operation]
    if status not in allowed:
        raise InvalidTransition(operation, status, allowed)


def derive(alive: bool, fifo_exists: bool, frozen: bool = False) -> str:
    """Status from facts (design.md §4.5): the init's liveness, the exec fifo, the freezer."""
    if not alive:
        return Status.STOPPED
    if fifo_exists:
        return Status.CREATED
    return Status.PAUSED if frozen else Status.RUNNING
