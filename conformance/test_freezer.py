"""``pause`` and ``resume`` (runc's verbs, not runtime.md's): the freezer cgroup stops and thaws
every process of the container, and ``state`` tells ``paused`` from ``running``.

The container runs an init and a child that ticks (writes a counter to /tick every 20 ms). The
witnesses are the host's: the freezer of the cgroup each process is in (v1 ``freezer.state``
FROZEN, v2 ``cgroup.events`` "frozen 1") and the counter in the overlay upper, which must stop
moving while the container is paused and move again after resume. pause and resume are not
spec operations, so a runtime without them is skipped with that reason.
"""

from __future__ import annotations

import time

import pytest

from bulkhead.containers import Container, ContainerFactory, poll
from conformance._cgroups import ProcessCgroups, layout
from conformance._support import sh, stoppable, wait_ready

_TICKER = "(i=0; while :; do i=$((i+1)); echo $i >/tick; usleep 20000; done) & "
# How long a frozen counter must stay still to count as stopped: 15 ticks' worth.
STILL_FOR = 0.3


def _frozen(pid: int) -> bool | None:
    """Whether the freezer of ``pid``'s cgroup says frozen (None: the host has no freezer, or
    the process is gone)."""
    try:
        cgroups = ProcessCgroups(pid)
        cgroups.path_in(cgroups.layout.hierarchies[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    host = cgroups.layout
    v1 = host.hierarchy_of("freezer")
    if v1 is not None and v1.version == 1:
        state = (cgroups.dir("freezer") / "freezer.state").read_text().strip()
        return state == "FROZEN"
    if host.v2 is not None:
        events = (host.v2.dir_of(cgroups.path_in(host.v2)) / "cgroup.events").read_text()
        return "frozen 1" in events.splitlines()
    return None


def _tick(ctr: Container) -> int:
    """The counter (-1 before the first tick, or mid-write)."""
    try:
        text = (ctr.bundle.upper / "tick").read_text().strip()
    except FileNotFoundError:
        return -1
    return int(text) if text.isdigit() else -1


def _moving(ctr: Container) -> bool:
    first = _tick(ctr)
    poll(lambda: True if _tick(ctr) > first else None, timeout=5,
         what=f"the counter of container {ctr.id} to move past {first}")  # fmt: skip
    return True


def _still(ctr: Container) -> bool:
    first = _tick(ctr)
    time.sleep(STILL_FOR)  # absence of progress can only be seen over time
    return _tick(ctr) == first


def _processes(ctr: Container) -> list[int]:
    """Every pid in the container init's cgroup (the init and its children)."""
    d = ProcessCgroups(ctr.pid).dir("pids" if layout().hierarchy_of("pids") else "cgroup")
    return [int(x) for x in (d / "cgroup.procs").read_text().split()]


def _verb(ctr: Container, verb: str) -> None:
    call = ctr.client.call(verb, ctr.id, check=False)
    if call.returncode != 0 and "unknown command" in (call.stderr + call.stdout).lower():
        pytest.skip(f"{ctr.client.name} has no `{verb}` verb (runtime.md defines none)")
    assert call.returncode == 0, f"{verb} failed: {call.stderr.strip()}"


@pytest.mark.spec("runtime.state.6", "runtime.state.7")
def test_pause_freezes_every_process_and_resume_thaws_them(containers: ContainerFactory) -> None:
    if layout().hierarchy_of("freezer") is None and layout().v2 is None:
        pytest.skip("this host mounts no freezer: neither a v1 freezer nor cgroup v2")
    spec = containers.spec(sh(stoppable(first=_TICKER)))
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        assert _moving(ctr)
        assert _frozen(ctr.pid) is False, "the container's cgroup is frozen before pause"
        _verb(ctr, "pause")
        assert ctr.status == "paused"
        # Read while frozen, the members stay put: the init, the ticking subshell and the
        # sleep it had running, each judged by the freezer of its own cgroup.
        members = _processes(ctr)
        assert len(members) >= 2, f"the init has no child in its cgroup: {members}"
        frozen = {p: _frozen(p) for p in members}
        assert all(frozen.values()), f"after pause, not every process is frozen: {frozen}"
        assert _still(ctr), "the child's counter kept moving while the container was paused"
        _verb(ctr, "resume")
        assert ctr.status == "running", "after resume, state is not the standard 'running'"
        # A sleep may have ended once thawed (None); none may still be frozen.
        thawed = {p: _frozen(p) for p in members}
        assert not any(thawed.values()), f"after resume, some processes stay frozen: {thawed}"
        assert _moving(ctr), "the child's counter did not move again after resume"
