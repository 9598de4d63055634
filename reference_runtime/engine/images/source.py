"""What an image to load is made of, whatever format it came in, and where its files are read.

``Archive`` reads named files from a directory or from a tar (plain or gzip, random access);
oci_layout.py and docker_archive.py turn one into ``ImageSource``s: a name for messages, the
tags, the verified config and the layer blobs, each with what it must be checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from reference_runtime.engine.errors import EngineError

DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# Blobs read whole (index, manifests, configs): far above any real one, far below memory limits.
MAX_JSON = 8 << 20
_CHUNK = 1 << 20
# docker's reference grammar (distribution/reference), narrowed to what this engine stores:
# lowercase path components, an optional registry host[:port] first, an optional tag.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
NAME = re.compile(rf"^{_HOST}{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")


def short(digest: str) -> str:
    """sha256:<12 hex>, as docker shortens ids in messages."""
    return digest[: len("sha256:") + 12]


def parse_ref(ref: str) -> tuple[str, str] | None:
    """(name, tag) of "name[:tag]" (tag defaults to latest), or None if it is not a reference."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        name, tag = ref, "latest"
    if not NAME.match(name) or not TAG.match(tag):
        return None
    # docker's familiar form: Docker Hub's host and its "library/" namespace are implied
    # (skopeo writes "docker.io/bulkhead/x:t" into the RepoTags of a docker-archive).
    for hub in ("docker.io/", "index.docker.io/"):
        if name.startswith(hub):
            name = name[len(hub) :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
    return name, tag


def normalize_ref(ref: str, what: str) -> str:
    parsed = parse_ref(ref)
    if parsed is None:
        raise EngineError(f"failed to load image {what}: invalid reference {ref!r}")
    return f"{parsed[0]}:{parsed[1]}"


@dataclass(frozen=True)
class LayerBlob:
    open: Callable[[], IO[bytes]]  # the blob as stored (maybe compressed)
    media_type: str  # "" when the format does not say (docker save)
    digest: str | None  # the blob's digest to verify before use (OCI), None for docker save
    size: int | None


@dataclass(frozen=True)
class ImageSource:
    name: str  # what messages call the image: its first tag, else where it came from
    repo_tags: tuple[str, ...]  # normalized "name:tag"
    config_blob: bytes  # verified against its digest
    config: dict[str, Any]
    layers: tuple[LayerBlob, ...]  # bottom first


def check_digest(digest: Any, what: str, where: str) -> str:
    if not isinstance(digest, str) or not DIGEST.match(digest):
        # Only sha256 (image-spec descriptor.md: the one algorithm implementations MUST know);
        # and a digest becomes a file name, so nothing else may pass.
        raise EngineError(f"failed to load image {where}: {what}: unsupported or malformed "
                          f"digest {str(digest)[:80]!r}")  # fmt: skip
    return digest


def hash_stream(stream: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def verify(data: bytes, digest: str, size: int | None, what: str, where: str) -> None:
    if size is not None and len(data) != size:
        raise EngineError(f"failed to load image {where}: {what} {short(digest)}: size mismatch "
                          f"(descriptor says {size} bytes, blob has {len(data)})")  # fmt: skip
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest:
        raise EngineError(f"failed to load image {where}: {what} {short(digest)}: digest "
                          f"mismatch (got {short(got)})")  # fmt: skip


def parse_json(data: bytes, what: str, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineError(f"failed to load image {where}: {what} is not valid JSON: "
                          f"{str(exc).splitlines()[0]}") from None  # fmt: skip


class Archive:
    """Named files of an image directory or tar. Names are "/"-separated, relative; "./" and
    the tar's own links are resolved by tarfile, never by the filesystem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            return
        try:
            # "r:*": plain or gzip ("docker save | gzip"), with random access.
            self._tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed in __exit__
            for member in self._tar.getmembers():
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                self._members[name.rstrip("/")] = member
        except (OSError, tarfile.TarError, EOFError) as exc:
            if self._tar is not None:
                self._tar.close()
            if isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror
            elif isinstance(exc, tarfile.ReadError):
                # tarfile's message lists each compression it tried, one per line.
                reason = "neither a tar nor a compressed tar"
            else:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EngineError(f"failed to load image {path}: not a readable tar or image "
                              f"directory ({reason})") from None  # fmt: skip

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self._tar is not None:
            self._tar.close()

    def _file(self, name: str) -> Path:
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            raise EngineError(f"failed to load image {self.where}: bad file name {name!r}")
        return self.path.joinpath(*parts)

    def exists(self, name: str) -> bool:
        if self._tar is None:
            return self._file(name).is_file()
        member = self._members.get(name)
        return member is not None and (member.isfile() or member.issym() or member.islnk())

    def open(self, name: str) -> IO[bytes]:
        if self._tar is None:
            path = self._file(name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError as exc:
                raise self._missing(name, exc.strerror or "") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise self._missing(name, "not a regular file")
            return os.fdopen(fd, "rb")
        member = self._members.get(name)
        try:
            stream = self._tar.extractfile(member) if member is not None else None
        except (KeyError, tarfile.TarError):  # a link to a member that is not there
            stream = None
        if stream is None:
            raise self._missing(name, "not in the archive")
        return stream

    def _missing(self, name: str, reason: str) -> EngineError:
        return EngineError(f"failed to load image {self.where}: {name}: {reason}")

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise EngineError(f"failed to load image {self.where}: {name} is larger than "
                              f"{MAX_JSON} bytes")  # fmt: skip
        return data
