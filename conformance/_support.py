"""Small helpers shared by the conformance modules: scripts for the container, schema checks,
refusals judged with their controls, and the host's view of a container's processes."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bulkhead.bundle import Bundle
from bulkhead.containers import Container, ContainerFactory, poll
from bulkhead.hostview import (
    ProcessRef,
    cgroup_dirs,
    cmdline,
    is_alive,
    is_rooted_in,
    process_ref,
    process_status,
    processes_rooted_in,
    start_seconds,
)
from bulkhead.runtime import Call, RuntimeCallError, RuntimeClient
from bulkhead.spec import Spec
from bulkhead.spec.schema import SchemaNotFoundError, validator


def sh(script: str) -> tuple[str, ...]:
    """Container args running ``script`` under busybox sh."""
    return ("sh", "-c", script)


# PID 1 of a pid namespace ignores signals it has no handler for, so a container that must be
# stoppable by a signal traps it. `sleep & wait` keeps the shell interruptible at once.
WAIT_FOREVER = "touch /ready; sleep 1000 & wait"


def stoppable(marker: str = "ready", first: str = "") -> str:
    """A script that runs ``first``, writes ``/marker`` and waits, exiting 0 on SIGTERM (which
    PID 1 of a pid namespace would otherwise ignore). A marker unique to one start of a
    container tells that start's program from an earlier one in the same bundle."""
    return f"{first}trap 'exit 0' TERM; touch /{marker}; sleep 1000 & wait"


def wait_ready(ctr: Container, marker: str = "ready", timeout: float = 10.0) -> None:
    """Waits until the container wrote ``/marker``, seen from the host in the overlay upper."""
    path = ctr.bundle.upper / marker
    poll(
        lambda: True if path.exists() else None,
        timeout=timeout,
        what=f"/{marker} written by container {ctr.id}",
    )


def validate_against(schema_name: str, document: Any) -> None:
    """Validates against an official runtime-spec schema; skips if the schemas are not here."""
    try:
        check = validator(schema_name)
    except SchemaNotFoundError as exc:
        pytest.skip(f"runtime-spec schemas not found ({exc}); set BULKHEAD_SPEC_SCHEMA_DIR")
    errors = sorted(check.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def state_json(call: Call) -> dict[str, Any]:
    data = json.loads(call.stdout)
    assert isinstance(data, dict), f"state output is not a JSON object: {call.stdout!r}"
    return data


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def refused(call: Call) -> bool:
    """Whether the runtime refused: it exited with a non-zero status (runtime.md leaves the form
    of the error to the runtime).

    A death by a signal is neither a refusal nor a success, so it fails the test at once: a
    runtime that crashes on the error path must not pass for one that reports the error.
    """
    if call.returncode < 0:
        number = -call.returncode
        err = call.stderr.strip()
        raise AssertionError(
            f"{' '.join(call.argv)} crashed with signal {number} ({_signal_name(number)}) "
            "instead of exiting with a status" + (f"; stderr: {err}" if err else "")
        )
    return call.returncode != 0


def expect_refusal(call: Call, what: str) -> None:
    """Asserts that ``call`` was refused (an exit with a non-zero status)."""
    assert refused(call), f"{what}: the runtime answered success (exit 0)"


def expect_success(call: Call, what: str) -> None:
    """Asserts that ``call`` succeeded: the control next to a refusal, showing that the same
    call on valid input is answered, so the refusal is about the input and not a runtime that
    refuses everything."""
    assert not refused(call), f"{what} was refused (exit {call.returncode}): " + (
        call.stderr.strip() or call.stdout.strip() or "no output"
    )


def state_of(containers: ContainerFactory, cid: str) -> dict[str, Any]:
    """``state <cid>``, which must answer with a JSON object naming the container."""
    call = containers.client.raw_state(cid, check=False)
    expect_success(call, f"state of container {cid}")
    data = state_json(call)
    assert data.get("id") == cid, f"state of {cid} names another container: {data}"
    return data


# --- what the host sees of a container's processes -------------------------------------------


def container_process(ctr: Container) -> ProcessRef:
    """The container's process as the host sees it, from the pid ``state`` reports.

    The pid must name a live process whose root is this bundle's overlay (so it is the
    container's, not some process the runtime names); the returned reference (pid and start
    time) lets a later "stopped" be checked against the kernel.
    """
    pid = ctr.state().pid
    assert pid and pid > 0, f"state of {ctr.id} carries no pid while it should run"
    try:
        ref = process_ref(pid)
    except ProcessLookupError:
        raise AssertionError(f"the pid in the state of {ctr.id}, {pid}, is not a process") from None
    assert is_alive(ref), f"the pid in the state of {ctr.id} is a process that ended: {ref}"
    assert is_rooted_in(pid, ctr.bundle.upper), (
        f"pid {pid} from the state of {ctr.id} is not rooted in its bundle "
        f"({ctr.bundle.rootfs}); cmdline {cmdline(pid)}"
    )
    return ref


def assert_ended(ref: ProcessRef, why: str) -> None:
    """Asserts on the host that the process ``ref`` names has ended: gone, a zombie, or its pid
    now held by a process that started at another time."""
    status = process_status(ref)
    assert not is_alive(ref), (
        f"{why}, yet {ref.describe()} is still alive (state {status}, cmdline {cmdline(ref.pid)})"
    )


def wait_stopped(ctr: Container, process: ProcessRef, timeout: float = 10.0) -> None:
    """Waits until ``state`` says stopped, then checks the host agrees: the container's process,
    recorded while it ran, has ended (runtime.md: stopped means the process has exited)."""
    ctr.wait_for("stopped", timeout=timeout)
    assert_ended(process, f"state of {ctr.id} says stopped")


def assert_nothing_runs_in(bundle: Bundle) -> None:
    """No live process has this bundle's rootfs as its root."""
    found = processes_rooted_in(bundle.upper)
    assert not found, "processes rooted in the bundle: " + ", ".join(
        f"{pid} {cmdline(pid)}" for pid in found
    )


def assert_nothing_created(
    containers: ContainerFactory,
    cid: str,
    *,
    bundle: Bundle | None = None,
    pid_file: Path | None = None,
    since: float | None = None,
    what: str = "refused create",
) -> None:
    """Where the spec says a refused operation MUST NOT create a container (runtime.md create,
    "as if the operation never happened"), checks on the host that nothing is there: ``state``
    of the id is refused, no runtime state directory ``<root>/<cid>``, no cgroup named after
    the id, no live process in the pid file (if the runtime wrote one) that started ``since``
    (seconds after boot; None: at any time), no process rooted in the bundle."""
    problems = []
    if not refused(containers.client.raw_state(cid, check=False)):
        problems.append(f"state answers for {cid}")
    state_dir = containers.client.root / cid
    if state_dir.exists():
        problems.append(f"runtime state directory {state_dir}")
    problems += [f"cgroup {d}" for d in cgroup_dirs(cid)]
    if pid_file is not None:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            with contextlib.suppress(ProcessLookupError):
                ref = process_ref(int(text))
                # Start times count whole clock ticks: allow one tick (10 ms) of rounding.
                fresh = since is None or start_seconds(ref) >= since - 0.02
                if is_alive(ref) and fresh:
                    problems.append(f"live process {text} from {pid_file}: {cmdline(ref.pid)}")
    if bundle is not None:
        problems += [
            f"process {p} rooted in the bundle: {cmdline(p)}"
            for p in processes_rooted_in(bundle.upper)
        ]
    assert not problems, f"a {what} left behind: " + "; ".join(problems)


def boot_seconds() -> float:
    """Now, in seconds after boot (the clock of process start times)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def host_file(ctr: Container, path: str) -> Path:
    """Where a file the container wrote at ``path`` shows up on the host (the overlay upper)."""
    return ctr.bundle.upper / path.lstrip("/")


def _version_key(version: str) -> tuple[tuple[int, ...], bool]:
    """(release numbers, is a final release): 1.0.2-dev comes before 1.0.2 (semver §11)."""
    core, _, pre = version.partition("+")[0].partition("-")
    return tuple(int(part) for part in core.split(".") if part.isdigit()), not pre


@functools.cache
def declared_spec_max(runtime: RuntimeClient) -> str | None:
    """``ociVersionMax`` from the runtime's ``features`` output; None if it has no such verb."""
    try:
        value = runtime.features().get("ociVersionMax")
    except (RuntimeCallError, ValueError):
        return None
    return value if isinstance(value, str) else None


def skip_unless_declared_spec_version(
    runtime: RuntimeClient, needed: str, what: str, *, must_declare: bool = False
) -> None:
    """Skips when the runtime itself declares (features.md) a spec older than ``what`` needs.

    With ``must_declare`` a runtime without ``features`` output is skipped too: for a field that
    runtimes silently ignore when they do not know it, only a declaration says a test is fair.
    """
    declared = declared_spec_max(runtime)
    if declared is None and must_declare:
        pytest.skip(
            f"{what} arrived in runtime-spec {needed}; {runtime.name} has no `features` output "
            "declaring which spec version it implements"
        )
    if declared is not None and _version_key(declared) < _version_key(needed):
        pytest.skip(
            f"{what} arrived in runtime-spec {needed}; {runtime.name} declares "
            f"ociVersionMax {declared} in its features output"
        )


def grant(spec: Spec, *caps: str) -> Spec:
    """Adds capabilities to the bounding, effective and permitted sets of ``spec``."""
    assert spec.process is not None and spec.process.capabilities is not None
    c = spec.process.capabilities
    for name in ("bounding", "effective", "permitted"):
        current = getattr(c, name) or []
        setattr(c, name, current + [cap for cap in caps if cap not in current])
    return spec


def without_namespace(spec: Spec, kind: str) -> Spec:
    """Drops a namespace type from ``spec``: the container then shares the runtime's."""
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces = [ns for ns in spec.linux.namespaces if ns.type != kind]
    return spec
