"""Leftovers of a crashed engine, collected by the next command (under the engine lock).

Three kinds: a container whose monitor died (it may still run, with nobody to hold its stdio or
record its exit: it is killed and released, its State says why); a record still "created" (a
``run`` killed before its monitor answered; ``run`` holds the lock until then, so under the lock
this is never a run in progress): removed whole; network namespaces and veths of containers that
no longer exist (network.collect).
"""

from __future__ import annotations

import contextlib
import os

from reference_runtime.engine import containers, lifecycle
from reference_runtime.engine.containers import Container, ContainerStore
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.runtime import OciRuntime

EXIT_KILLED = 137  # 128 + SIGKILL, what docker records for a container it had to kill
EXIT_UNKNOWN = 255


def recover(layout: Layout, container: Container) -> None:
    """A running container without its monitor: kill it, release it, record why."""
    from reference_runtime.linux import proc

    pid = int(container.state.get("Pid") or 0)
    code = EXIT_UNKNOWN
    if pid and proc.is_alive(pid, container.extra.get("PidStart")):
        try:
            OciRuntime.open(str(container.extra["Runtime"]), layout).kill(container.id, "KILL")
            code = EXIT_KILLED
        except EngineError:
            pass  # release() deletes it with --force anyway
    lifecycle.release(layout, container)
    container.state.update(Status="exited", Running=False, Pid=0, ExitCode=code,
                           FinishedAt=containers.now(),
                           Error=container.state.get("Error") or "its monitor died")  # fmt: skip
    container.save()


def collect(settings: lifecycle.Settings) -> list[str]:
    """Call with the engine lock held. Returns what was done, one line each."""
    layout = settings.layout
    done: list[str] = []
    live: set[str] = set()
    for c in ContainerStore(layout).all():
        status = c.state.get("Status")
        if status == "created":
            lifecycle.release(layout, c)
            if "RwLayer" in c.extra:
                lifecycle.remove_files(layout, c)
            else:
                containers.remove_dir(c.dir)
            done.append(f"removed half-created container {c.id[:12]}")
            continue
        live.add(c.id)
        if c.running and not lifecycle.monitor_alive(c):
            recover(layout, c)
            done.append(f"recovered container {c.id[:12]} (its monitor died)")
    try:
        names = {e for e in os.listdir(layout.netns_dir) if e != "engine"}
    except FileNotFoundError:
        names = set()
    from reference_runtime.engine.network.ipam import Ipam

    with contextlib.suppress(EngineError, OSError, ValueError):
        # An address can outlive its namespace file (a crash between the two).
        names |= set(Ipam(layout.network / "bridge.json", settings.subnet).allocations())
    if names - live:  # only then pay for pyroute2
        done += lifecycle.network(settings).collect(live)
    return done
