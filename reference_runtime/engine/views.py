"""What the read-only verbs show: ``inspect``'s document, ``ps``'s rows, ``logs``' lines."""

from __future__ import annotations

import contextlib
import json
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from reference_runtime.engine.containers import Container
from reference_runtime.engine.layout import Layout

FOLLOW_POLL = 0.05


def inspect_document(layout: Layout, container: Container) -> dict[str, Any]:
    """docker inspect's shape: the record, HostConfig, GraphDriver and Mounts."""
    from reference_runtime.engine.overlay2 import Overlay2

    # config.v2.json says "ID" and inspect "Id", as docker's do.
    record = {("Id" if k == "ID" else k): v for k, v in container.record.items() if k != "Bulkhead"}
    record["HostConfig"] = container.hostconfig
    rw = str(container.extra["RwLayer"])
    record["GraphDriver"] = {"Name": "overlay2", "Data": Overlay2(layout).graph_driver_data(rw)}
    record["Mounts"] = []  # no volumes: the engine has none
    record["Bulkhead"] = {
        k: container.extra[k]
        for k in ("Runtime", "RuntimeBinary", "Bundle", "CgroupsPath", "MonitorPid")
        if k in container.extra
    }
    return record


def status_text(container: Container, now: float | None = None) -> str:
    state = container.state
    if state.get("Running"):
        return "Up since " + str(state.get("StartedAt", ""))[:19].replace("T", " ")
    if state.get("Status") == "exited":
        return f"Exited ({state.get('ExitCode')})"
    return str(state.get("Status", "unknown")).capitalize()


def ports_text(container: Container) -> str:
    ports = container.record.get("NetworkSettings", {}).get("Ports") or {}
    return ", ".join(
        f"{b['HostIp']}:{b['HostPort']}->{port}" for port, bound in ports.items() for b in bound
    )


def ps_table(rows: list[Container], out: IO[str]) -> None:
    header = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
    table = [header]
    for c in rows:
        command = " ".join([c.record.get("Path", ""), *c.record.get("Args", [])])
        if len(command) > 20:
            command = command[:19] + "…"
        created = str(c.record.get("Created", ""))[:19].replace("T", " ")
        table.append((c.id[:12], str(c.record["Config"].get("Image", "")), f'"{command}"',
                      created, status_text(c), ports_text(c), c.name))  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        out.write("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _emit(line: bytes, out: IO[bytes], err: IO[bytes]) -> None:
    try:
        record = json.loads(line)
    except ValueError:
        return  # a line being written as we read: the next read completes it
    target = err if record.get("stream") == "stderr" else out
    target.write(str(record.get("log", "")).encode())
    target.flush()


def print_logs(
    path: Path,
    *,
    follow: Callable[[], bool] | None = None,
    wake: int | None = None,
    out: IO[bytes] | None = None,
    err: IO[bytes] | None = None,
) -> None:
    """The log's lines to stdout and stderr, stream by stream. With ``follow``, keeps reading
    while it returns True (the container runs), then reads what is left. ``wake`` is an fd that
    becomes readable when the container ends (a foreground run's status pipe)."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    pending = b""
    try:
        f = open(path, "rb")  # noqa: SIM115 - read incrementally below
    except FileNotFoundError:
        if follow is None:
            return
        f = None
    try:
        while True:
            if f is None:
                with contextlib.suppress(FileNotFoundError):
                    f = open(path, "rb")  # noqa: SIM115
            chunk = f.read() if f is not None else b""
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _emit(line, out, err)
                continue
            if follow is None or not follow():
                if f is not None:
                    rest = f.read()
                    pending += rest
                if pending.strip():
                    _emit(pending, out, err)
                return
            if wake is not None:
                select.select([wake], [], [], FOLLOW_POLL)
            else:
                time.sleep(FOLLOW_POLL)
    finally:
        if f is not None:
            f.close()


def backing_filesystem(path: Path) -> str:
    """The filesystem under the root, named as docker info does (ext4 shows as "extfs")."""
    best = ("", "unknown")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            fstype = fields[fields.index("-") + 1]
            inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, fstype)
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(best[1], best[1])


def cgroup_version() -> str:
    from reference_runtime.engine.runtime import cgroup_v2

    return "2" if cgroup_v2() else "1"
