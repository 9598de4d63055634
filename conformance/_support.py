"""Small helpers shared by the conformance modules (scripts for the container, schema checks)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import Container, poll
from bulkhead.runtime import Call, RuntimeCallError, RuntimeClient
from bulkhead.spec import Spec
from bulkhead.spec.schema import SchemaNotFoundError, validator


def sh(script: str) -> tuple[str, ...]:
    """Container args running ``script`` under busybox sh."""
    return ("sh", "-c", script)


# PID 1 of a pid namespace ignores signals it has no handler for, so a container that must be
# stoppable by a signal traps it. `sleep & wait` keeps the shell interruptible at once.
WAIT_FOREVER = "touch /ready; sleep 1000 & wait"


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


def refused(call: Call) -> bool:
    """A refusal per runtime.md: a non-zero exit (the error itself is runtime-specific)."""
    return call.returncode != 0


def host_file(ctr: Container, path: str) -> Path:
    """Where a file the container wrote at ``path`` shows up on the host (the overlay upper)."""
    return ctr.bundle.upper / path.lstrip("/")


def _version_key(version: str) -> tuple[int, ...]:
    core = version.split("-", 1)[0].split("+", 1)[0]
    return tuple(int(part) for part in core.split(".") if part.isdigit())


@functools.cache
def declared_spec_max(runtime: RuntimeClient) -> str | None:
    """``ociVersionMax`` from the runtime's ``features`` output; None if it has no such verb."""
    try:
        value = runtime.features().get("ociVersionMax")
    except (RuntimeCallError, ValueError):
        return None
    return value if isinstance(value, str) else None


def skip_unless_declared_spec_version(runtime: RuntimeClient, needed: str, what: str) -> None:
    """Skips when the runtime itself declares (features.md) a spec older than ``what`` needs."""
    declared = declared_spec_max(runtime)
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
