"""Container images written by the judge itself, for tests of an image engine.

No registry is reachable here, so the suite writes its own images: a multi-layer busybox image
(an entrypoint script that runs a ``/docker-entrypoint.d/`` directory of scripts, as nginx's image
does; a file deleted through a whiteout; a directory made opaque), an httpd image above it, bad
layouts (``tamper``) and hostile layer tars (``hostile_image``). They are written as an OCI
image layout (image-spec v1.1 ``image-layout.md``) or as a ``docker save`` tarball.

Everything is deterministic: entries keep the order the spec lists them in (the builders list
them sorted, so parents come before children and hard links after their targets), every mtime
is the image's ``created`` time, owners are 0:0 with empty names, gzip carries no name and mtime 0,
and JSON is written with sorted keys and no spaces. The same spec gives the same digests.

stdlib only: the engine imports this module for its ``image build-test`` verb.
"""

from __future__ import annotations

import calendar
import functools
import gzip as gzip_module
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Media types (image-spec media-types.md; docker's from its image manifest v2 schema 2).
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# annotations.md: the tag part of a reference; containerd's import names the image by the other.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
LAYOUT_VERSION = "1.0.0"

CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_REF = "bulkhead/busybox:test"
HTTPD_REF = "bulkhead/httpd:test"

# What the test images hold, for tests to compare with what they see.
DOOMED_PATH = "/etc/doomed"  # in layer 2, whited out in layer 3
OPAQUE_DIR = "/opt/lower"  # a, b in layer 2; opaque in layer 3, which adds c
OPAQUE_BEFORE = ("a", "b")
OPAQUE_AFTER = ("c",)
# The entrypoint.d scripts print these lines to stderr, in this order, before the command runs.
# They go to stderr so that a command's stdout is exactly its own output.
ENTRYPOINT_MESSAGES = ("10-hello.sh: hello from docker-entrypoint.d",
                       "20-ready.sh: docker-entrypoint.d done")  # fmt: skip
HTTPD_INDEX = b"<h1>bulkhead httpd test image</h1>\n"
# Applets that are hard links to /bin/busybox (the rest are symlinks), so images carry both kinds.
HARDLINKED_APPLETS = ("cat", "echo", "ls", "sh")

_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass
class LayerEntry:
    """One tar member. ``path`` goes into the tar as it is (relative, as image-spec layer.md
    expects; hostile images put other names here); ``target`` is a link's target."""

    path: str
    kind: str
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    major: int = 0
    minor: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _TAR_TYPES:
            raise ValueError(f"unknown layer entry kind {self.kind!r}")


@dataclass
class ImageSpec:
    """An image before it is written: its layers (bottom first) and the ``config`` section of
    its image config (Entrypoint, Cmd, Env, WorkingDir, ExposedPorts, ...)."""

    layers: list[list[LayerEntry]]
    config: dict[str, Any]
    created: str = CREATED


def _dir(path: str, mode: int = 0o755) -> LayerEntry:
    return LayerEntry(path, "dir", mode=mode)


def _file(path: str, data: bytes, mode: int = 0o644) -> LayerEntry:
    return LayerEntry(path, "file", data=data, mode=mode)


def _symlink(path: str, target: str) -> LayerEntry:
    return LayerEntry(path, "symlink", mode=0o777, target=target)


def _hardlink(path: str, target: str, mode: int = 0o755) -> LayerEntry:
    return LayerEntry(path, "hardlink", mode=mode, target=target)


# ---------------------------------------------------------------------------------------------
# Layer tars and digests


def _epoch(created: str) -> int:
    return calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))


def layer_tar(entries: list[LayerEntry], mtime: int) -> bytes:
    """The uncompressed tar of one layer (PAX, as docker writes; long names need it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.type = _TAR_TYPES[entry.kind]
            info.mode = entry.mode
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.kind in ("symlink", "hardlink"):
                info.linkname = entry.target
            if entry.kind in ("char", "block"):
                info.devmajor, info.devminor = entry.major, entry.minor
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    # No file name and mtime 0 in the gzip header (RFC 1952), so the bytes depend on data only.
    return gzip_module.compress(data, compresslevel=6, mtime=0)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """image-spec config.md: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " "
    + DiffID(Ln)); docker shares layers between images by it."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def _architecture() -> str:
    # GOARCH names, as image-spec config.md asks.
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


@dataclass(frozen=True)
class _Built:
    tars: list[bytes]  # uncompressed layer tars, bottom first
    diff_ids: list[str]
    config: bytes  # the image config blob


def _build(image: ImageSpec) -> _Built:
    mtime = _epoch(image.created)
    tars = [layer_tar(entries, mtime) for entries in image.layers]
    diff_ids = [sha256_digest(t) for t in tars]
    config = {
        "created": image.created,
        "architecture": _architecture(),
        "os": "linux",
        "config": image.config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": image.created, "created_by": f"bulkhead.images: layer {i + 1}"}
            for i in range(len(tars))
        ],
    }
    return _Built(tars, diff_ids, canonical_json(config))


def diff_ids(image: ImageSpec) -> list[str]:
    """The digests of the image's uncompressed layer tars, bottom first (its rootfs.diff_ids)."""
    return _build(image).diff_ids


def image_id(image: ImageSpec) -> str:
    """The image's id (the sha256 of its config blob), as an engine that loads it must report."""
    return sha256_digest(_build(image).config)


def split_ref(ref: str) -> tuple[str, str]:
    """("bulkhead/busybox", "test") from "bulkhead/busybox:test"; the tag defaults to latest
    (a ":" before the last "/" is a registry port, not a tag)."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


# ---------------------------------------------------------------------------------------------
# The images


@functools.lru_cache(maxsize=1)
def _busybox() -> tuple[bytes, tuple[str, ...]]:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(candidate):
            listed = subprocess.run([candidate, "--list"], capture_output=True, text=True,
                                    check=True).stdout.split()  # fmt: skip
            return Path(candidate).read_bytes(), tuple(a for a in listed if a != "busybox")
    raise FileNotFoundError("busybox not found: install Debian's busybox-static")


_ENTRYPOINT = b"""#!/bin/sh
# Runs every executable /docker-entrypoint.d/*.sh in name order, then the command
# (nginx's image starts the same way). A failing script stops the container.
set -e
for script in /docker-entrypoint.d/*.sh; do
    if [ -x "$script" ]; then
        "$script"
    fi
done
exec "$@"
"""


def _script(message: str) -> bytes:
    return f'#!/bin/sh\necho "{message}" >&2\n'.encode()


def _base_layer() -> list[LayerEntry]:
    busybox, applets = _busybox()
    entries = [_dir(d) for d in ("bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin",
                                 "var")]  # fmt: skip
    entries += [_dir("root", 0o700), _dir("tmp", 0o1777)]
    entries.append(_file("bin/busybox", busybox, 0o755))
    for applet in applets:
        if applet in HARDLINKED_APPLETS:
            entries.append(_hardlink(f"bin/{applet}", "bin/busybox"))
        else:
            entries.append(_symlink(f"bin/{applet}", "busybox"))
    if "env" in applets:
        # An absolute symlink, valid inside the container: scripts start with #!/usr/bin/env.
        entries.append(_symlink("usr/bin/env", "/bin/env"))
    entries.append(_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                         b"nobody:x:65534:65534:nobody:/home:/bin/false\n"))  # fmt: skip
    entries.append(_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n"))
    entries.sort(key=lambda e: e.path)
    # Sorted names keep every hard link after bin/busybox ("cat" > "busybox", ...).
    names = [e.path for e in entries]
    assert all(names.index(e.target) < names.index(e.path) for e in entries
               if e.kind == "hardlink")  # fmt: skip
    return entries


def _entrypoint_layer() -> list[LayerEntry]:
    first, second = ENTRYPOINT_MESSAGES
    return [
        _dir("docker-entrypoint.d"),
        _file("docker-entrypoint.d/10-hello.sh", _script(first), 0o755),
        _file("docker-entrypoint.d/20-ready.sh", _script(second), 0o755),
        _file("docker-entrypoint.sh", _ENTRYPOINT, 0o755),
        _dir("etc"),
        _file("etc/doomed", b"deleted by a whiteout in the layer above\n"),
        _dir("opt"),
        _dir("opt/lower"),
        _file("opt/lower/a", b"a: hidden by the opaque directory above\n"),
        _file("opt/lower/b", b"b: hidden by the opaque directory above\n"),
    ]


def _whiteout_layer() -> list[LayerEntry]:
    # image-spec layer.md "Whiteouts": ".wh.<name>" deletes <name> of the layers below;
    # ".wh..wh..opq" hides every entry of the directory below, while siblings of this layer stay.
    return [
        _dir("etc"),
        _file("etc/.wh.doomed", b"", 0o600),
        _dir("opt"),
        _dir("opt/lower"),
        _file("opt/lower/.wh..wh..opq", b"", 0o600),
        _file("opt/lower/c", b"c: added beside the opaque marker\n"),
    ]


def _busybox_config() -> dict[str, Any]:
    return {
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["sh"],
        "Env": [PATH_ENV],
        "WorkingDir": "/",
    }


def busybox_test_image() -> ImageSpec:
    """Three layers: busybox, then the entrypoint with its scripts plus /etc/doomed and
    /opt/lower/{a,b}, then a whiteout of /etc/doomed and /opt/lower made opaque with a new c."""
    return ImageSpec(layers=[_base_layer(), _entrypoint_layer(), _whiteout_layer()],
                     config=_busybox_config())  # fmt: skip


def httpd_test_image() -> ImageSpec:
    """busybox_test_image's layers plus /www/index.html, served by busybox httpd on port 80."""
    image = busybox_test_image()
    image.layers.append([_dir("www"), _file("www/index.html", HTTPD_INDEX)])
    image.config["Cmd"] = ["httpd", "-f", "-p", "80", "-h", "/www"]
    image.config["ExposedPorts"] = {"80/tcp": {}}
    return image


# What each hostile top layer tries; the engine must refuse every one and leave nothing behind.
_HOSTILE: dict[str, Callable[[], list[LayerEntry]]] = {
    "dotdot": lambda: [_file("../../escape", b"escaped\n")],
    "absolute": lambda: [_file("/abs/path", b"absolute\n")],
    # 1:1 is /dev/mem: a container that holds it reads the host's memory.
    "device": lambda: [_dir("dev"), LayerEntry("dev/evil", "char", mode=0o666, major=1, minor=1)],
    "block": lambda: [_dir("dev"), LayerEntry("dev/disk", "block", mode=0o666, major=8, minor=0)],
    "hardlink-out": lambda: [_hardlink("passwd-link", "../../etc/passwd", 0o644)],
    "hardlink-missing": lambda: [_hardlink("early", "not/yet/there", 0o644)],
    # A hard link through a symlinked parent would link the host's /etc/passwd.
    "hardlink-through": lambda: [_symlink("etc3", "/etc"), _hardlink("x", "etc3/passwd", 0o644)],
    "symlink-through": lambda: [_symlink("etc2", "/etc"), _file("etc2/pwned", b"pwned\n")],
    "symlink-parent": lambda: [_symlink("d", "../../.."), _file("d/x", b"pwned\n")],
    # ".wh..." names "..": a whiteout must never delete or shadow anything above the layer.
    "whiteout-dotdot": lambda: [_dir("etc"), _file("etc/.wh...", b"", 0o600)],
}
HOSTILE_KINDS = tuple(_HOSTILE)


def hostile_image(kind: str, *, aim: str) -> ImageSpec:
    """busybox_test_image plus one hostile top layer (HOSTILE_KINDS).

    The attacks that name an absolute place aim at ``aim``, an absolute directory: symlinks to
    it, and the absolute member ``aim``/abs/path. It has no default: a test points it at a
    canary of its own and sees an escape there, so an extractor that fails the test cannot
    write on the host (written as attacks are, these would aim at the host's /etc)."""
    if kind not in _HOSTILE:
        raise ValueError(f"unknown hostile image kind {kind!r}: one of {', '.join(_HOSTILE)}")
    if not aim.startswith("/"):
        raise ValueError(f"aim must be an absolute directory, not {aim!r}")
    layer = _HOSTILE[kind]()
    for entry in layer:
        if entry.kind == "symlink" and entry.target == "/etc":
            entry.target = aim
        elif entry.path.startswith("/abs/"):
            entry.path = aim.rstrip("/") + entry.path
    image = busybox_test_image()
    image.layers.append(layer)
    return image


# ---------------------------------------------------------------------------------------------
# Writers


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_oci_layout(image: ImageSpec, dest: Path, ref: str, *, gzip: bool = False) -> Path:
    """Writes ``image`` into the OCI image layout ``dest`` (created if missing; a layout that is
    already there keeps its other images, and an entry of the same ``ref`` is replaced).
    Returns dest."""
    built = _build(image)
    dest.mkdir(parents=True, exist_ok=True)
    layers = []
    for tar in built.tars:
        blob = gzip_bytes(tar) if gzip else tar
        layers.append({"mediaType": MEDIA_LAYER_GZIP if gzip else MEDIA_LAYER,
                       **_write_blob(dest, blob)})  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, **_write_blob(dest, built.config)},
        "layers": layers,
    }
    _, tag = split_ref(ref)
    entry = {
        "mediaType": MEDIA_MANIFEST,
        **_write_blob(dest, canonical_json(manifest)),
        "annotations": {ANNOTATION_REF_NAME: tag, ANNOTATION_CONTAINERD_NAME: ref},
        "platform": {"architecture": _architecture(), "os": "linux"},
    }
    index_path = dest / "index.json"
    manifests: list[dict[str, Any]] = []
    if index_path.exists():
        old = json.loads(index_path.read_bytes()).get("manifests", [])
        manifests = [
            m for m in old if m.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME) != ref
        ]
    manifests.append(entry)
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests}
    (dest / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    index_path.write_bytes(canonical_json(index))
    return dest


def _tar_of(members: dict[str, bytes | None], mtime: int) -> bytes:
    """A tar of ``members`` in name order (None: a directory)."""
    entries = [LayerEntry(name, "dir", mode=0o755) if data is None else _file(name, data)
               for name, data in sorted(members.items())]  # fmt: skip
    return layer_tar(entries, mtime)


def pack_oci_layout(layout: Path, dest: Path) -> Path:
    """A tar of the layout directory ``layout`` (what ``docker save`` of recent docker and
    ``skopeo copy ... oci-archive:`` write): the engine loads it as it loads the directory."""
    members: dict[str, bytes | None] = {}
    for path in sorted(layout.rglob("*")):
        name = path.relative_to(layout).as_posix()
        members[name] = None if path.is_dir() else path.read_bytes()
    dest.write_bytes(_tar_of(members, 0))
    return dest


def _archive_members(image: ImageSpec, repo_tag: str) -> dict[str, bytes | None]:
    built = _build(image)
    config_hex = sha256_digest(built.config).split(":", 1)[1]
    members: dict[str, bytes | None] = {f"{config_hex}.json": built.config}
    layer_paths = []
    parent = ""
    # docker save names each layer directory by a v1 id; the chain id is unique per position.
    for tar, chain_id in zip(built.tars, chain_ids(built.diff_ids), strict=True):
        layer_hex = chain_id.split(":", 1)[1]
        v1: dict[str, Any] = {"id": layer_hex, "created": image.created}
        if parent:
            v1["parent"] = parent
        members[layer_hex] = None
        members[f"{layer_hex}/VERSION"] = b"1.0"
        members[f"{layer_hex}/json"] = canonical_json(v1)
        members[f"{layer_hex}/layer.tar"] = tar
        layer_paths.append(f"{layer_hex}/layer.tar")
        parent = layer_hex
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [repo_tag], "Layers": layer_paths}]
    members["manifest.json"] = canonical_json(manifest)
    name, tag = split_ref(repo_tag)
    members["repositories"] = canonical_json({name: {tag: parent}})
    return members


def write_docker_archive(image: ImageSpec, dest: Path, repo_tag: str, *,
                         gzip: bool = False) -> Path:  # fmt: skip
    """Writes ``image`` as ``docker save`` does (manifest.json, <config hex>.json,
    <layer>/layer.tar, repositories) into the tar file ``dest``; gzip: as ``docker save | gzip``.
    """
    data = _tar_of(_archive_members(image, repo_tag), _epoch(image.created))
    dest.write_bytes(gzip_bytes(data) if gzip else data)
    return dest


# ---------------------------------------------------------------------------------------------
# Bad input

TAMPER_KINDS = ("layer-digest", "config-digest", "diff-id", "manifest-digest", "missing-layer",
                "truncated-layer")  # fmt: skip


def _flip_file_byte(tar: bytes) -> bytes:
    """Changes one byte inside the data of the first non-empty regular file: the tar stays a
    valid tar (only a digest can tell), and its size stays the same."""
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        member = next(m for m in archive.getmembers() if m.isfile() and m.size > 0)
    out = bytearray(tar)
    out[member.offset_data] ^= 0x01
    return bytes(out)


def _flip_json_digit(blob: bytes, key: bytes) -> bytes:
    """Changes one digit after ``key``: still valid JSON of the same size, another digest."""
    out = bytearray(blob)
    at = blob.index(key) + len(key)
    while not chr(out[at]).isdigit() and chr(out[at]) not in "abcdef":
        at += 1
    out[at] = ord("1") if out[at] != ord("1") else ord("2")
    return bytes(out)


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def _tamper_oci(layout: Path, what: str) -> None:
    index_path = layout / "index.json"
    index = json.loads(index_path.read_bytes())
    entry = index["manifests"][-1]
    manifest_path = _blob_path(layout, entry["digest"])
    manifest = json.loads(manifest_path.read_bytes())
    top = manifest["layers"][-1]
    top_path = _blob_path(layout, top["digest"])
    config_path = _blob_path(layout, manifest["config"]["digest"])
    if what == "layer-digest":
        blob = top_path.read_bytes()
        if top["mediaType"] == MEDIA_LAYER:
            top_path.write_bytes(_flip_file_byte(blob))
        else:
            flipped = bytearray(blob)
            flipped[len(blob) // 2] ^= 0x01
            top_path.write_bytes(bytes(flipped))
    elif what == "config-digest":
        config_path.write_bytes(_flip_json_digit(config_path.read_bytes(), b'"created":"'))
    elif what == "manifest-digest":
        manifest_path.write_bytes(_flip_json_digit(manifest_path.read_bytes(), b'"sha256:'))
    elif what == "missing-layer":
        top_path.unlink()
    elif what == "truncated-layer":
        blob = top_path.read_bytes()
        top_path.write_bytes(blob[: len(blob) // 2])
    elif what == "diff-id":
        # A config that is itself intact (its digest matches its descriptor, and the manifest's
        # digest matches the index) but names a diff id the layer does not have.
        config = json.loads(config_path.read_bytes())
        config["rootfs"]["diff_ids"][-1] = sha256_digest(b"not this layer")
        manifest["config"] = {"mediaType": manifest["config"]["mediaType"],
                              **_write_blob(layout, canonical_json(config))}  # fmt: skip
        entry.update(_write_blob(layout, canonical_json(manifest)))
        index_path.write_bytes(canonical_json(index))
    else:
        raise ValueError(f"unknown tamper kind {what!r}: one of {', '.join(TAMPER_KINDS)}")


def _tamper_archive(archive: Path, what: str) -> None:
    raw = archive.read_bytes()
    was_gzip = raw[:2] == b"\x1f\x8b"
    data = gzip_module.decompress(raw) if was_gzip else raw
    members: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            members[m.name] = None if f is None else f.read()
    manifest = json.loads(members["manifest.json"] or b"[]")
    top = manifest[-1]["Layers"][-1]
    config_name = manifest[-1]["Config"]
    if what == "layer-digest":
        members[top] = _flip_file_byte(members[top] or b"")
    elif what == "config-digest":
        members[config_name] = _flip_json_digit(members[config_name] or b"", b'"created":"')
    elif what == "missing-layer":
        del members[top]
    elif what == "truncated-layer":
        layer = members[top] or b""
        members[top] = layer[: len(layer) // 2]
    elif what == "diff-id":
        config = json.loads(members.pop(config_name) or b"{}")
        config["rootfs"]["diff_ids"][-1] = sha256_digest(b"not this layer")
        blob = canonical_json(config)
        new_name = sha256_digest(blob).split(":", 1)[1] + ".json"
        members[new_name] = blob
        manifest[-1]["Config"] = new_name
        members["manifest.json"] = canonical_json(manifest)
    else:
        raise ValueError(f"unknown tamper kind {what!r} for a docker archive")
    out = _tar_of(members, 0)
    archive.write_bytes(gzip_bytes(out) if was_gzip else out)


def tamper(layout: Path, what: str) -> None:
    """Makes a bad image for the bad-input tests, in place. ``layout`` is an OCI layout directory
    (its last index entry is tampered) or a docker-save tar. ``what`` (TAMPER_KINDS):
    "layer-digest" (one byte of the top layer changed), "config-digest" (one byte of the config
    changed, its name/descriptor kept), "diff-id" (a consistent config that lists a wrong diff id
    for the top layer), "manifest-digest", "missing-layer", "truncated-layer" (half the blob)."""
    if layout.is_dir():
        _tamper_oci(layout, what)
    else:
        _tamper_archive(layout, what)
