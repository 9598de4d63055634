"""Containers as the engine keeps them: ``containers/<id>/`` with docker's files.

``config.v2.json`` is the record (what docker's daemon keeps: Config, State, NetworkSettings and
the paths of the files below) and ``hostconfig.json`` the options ``run`` was given. The
``hostname``, ``hosts`` and ``resolv.conf`` files are bind-mounted into the container;
``resolv.conf.hash`` lets a later writer see whether someone edited resolv.conf; ``mounts/shm``
is the tmpfs behind the container's /dev/shm; ``<id>-json.log`` is the json-file log.

Only the engine's own extras (which runtime, which layer, which monitor) sit under the
``Bulkhead`` key of config.v2.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout

CONFIG = "config.v2.json"
HOSTCONFIG = "hostconfig.json"
HOSTS_BASE = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def now() -> str:
    """RFC 3339 with nanoseconds in UTC, as docker writes times."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def new_id() -> str:
    return secrets.token_hex(32)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` whole: a reader sees the old file or the new one, never half of one."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, document: Any) -> None:
    write_atomic(path, json.dumps(document, indent=None, separators=(",", ":")) + "\n")


def host_resolv_conf(source: Path = Path("/etc/resolv.conf")) -> str:
    """The host's resolv.conf without loopback nameservers, which inside a network namespace of
    its own would name the container itself (docker filters them for the same reason). No
    public resolver is put in their place: nothing here routes to one."""
    try:
        text = source.read_text(errors="replace")
    except OSError:
        text = ""
    kept = []
    for line in text.splitlines():
        fields = line.split()
        loopback = len(fields) > 1 and (fields[1].startswith("127.") or fields[1] == "::1")
        if fields[:1] == ["nameserver"] and loopback:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


@dataclass
class Container:
    """One container's directory and its record (config.v2.json), host config beside it."""

    dir: Path
    record: dict[str, Any]
    hostconfig: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.record["ID"])

    @property
    def name(self) -> str:
        return str(self.record["Name"]).lstrip("/")

    @property
    def state(self) -> dict[str, Any]:
        state = self.record["State"]
        assert isinstance(state, dict)
        return state

    @property
    def extra(self) -> dict[str, Any]:
        extra = self.record["Bulkhead"]
        assert isinstance(extra, dict)
        return extra

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def shm(self) -> Path:
        return self.dir / "mounts" / "shm"

    def save(self) -> None:
        write_json(self.dir / CONFIG, self.record)
        write_json(self.dir / HOSTCONFIG, self.hostconfig)

    def reload(self) -> None:
        fresh = read(self.dir)
        self.record, self.hostconfig = fresh.record, fresh.hostconfig


def read(directory: Path) -> Container:
    try:
        record = json.loads((directory / CONFIG).read_text())
        hostconfig = json.loads((directory / HOSTCONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"failed to read container {directory.name}: {exc}") from None
    return Container(directory, record, hostconfig)


class ContainerStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def all(self) -> list[Container]:
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(self.layout.containers), key=lambda e: e.name):
                if entry.is_dir() and (Path(entry.path) / CONFIG).is_file():
                    with contextlib.suppress(EngineError):
                        found.append(read(Path(entry.path)))
        return sorted(found, key=lambda c: str(c.record.get("Created", "")))

    def get(self, ref: str) -> Container:
        """By name, full id, or a unique id prefix (docker's rules)."""
        if not ref:
            raise EngineError("failed to find container: no name or id given")
        everything = self.all()
        for c in everything:
            if c.name == ref.lstrip("/") or c.id == ref:
                return c
        matches = [c for c in everything if c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise EngineError(f"failed to find container {ref}: the prefix names {len(matches)}")
        raise EngineError(f"failed to find container {ref}: no such container")

    def name_taken(self, name: str) -> str | None:
        for c in self.all():
            if c.name == name:
                return c.id
        return None

    def users_of(self, image_id: str) -> list[str]:
        return [c.name for c in self.all() if c.record.get("Image") == image_id]

    def make_dir(self, cid: str) -> Path:
        """The new container's directory; the caller registers its removal as the undo of a
        failed ``run``."""
        directory = self.layout.containers / cid
        directory.mkdir(mode=0o710)
        return directory


def unmount(path: Path) -> None:
    """Detaches the mount at ``path`` if there is one (MNT_DETACH, umount(2))."""
    if os.path.ismount(path):
        from reference_runtime.linux import libc  # the mount wrappers, only when needed

        libc.umount2(str(path), 0x2)


def remove_dir(directory: Path) -> None:
    unmount(directory / "mounts" / "shm")
    shutil.rmtree(directory, ignore_errors=True)


def write_files(
    directory: Path, *, hostname: str, ip: str | None, resolv_conf: str
) -> dict[str, Path]:
    """hostname, hosts, resolv.conf and its hash, as docker writes them before the start."""
    paths = {
        "hostname": directory / "hostname",
        "hosts": directory / "hosts",
        "resolv.conf": directory / "resolv.conf",
        "resolv.conf.hash": directory / "resolv.conf.hash",
    }
    write_atomic(paths["hostname"], hostname + "\n")
    hosts = HOSTS_BASE + (f"{ip}\t{hostname}\n" if ip else "")
    write_atomic(paths["hosts"], hosts)
    write_atomic(paths["resolv.conf"], resolv_conf)
    digest = hashlib.sha256(resolv_conf.encode()).hexdigest()
    write_atomic(paths["resolv.conf.hash"], f"sha256:{digest}")
    return paths
