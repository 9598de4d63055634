"""The image store, laid out as docker's (image/overlay2/ under the engine's root):

    repositories.json                         {"Repositories": {name: {"name:tag": image id}}}
    imagedb/content/sha256/<hex>              each image's config as loaded (sha256 == hex == id)
    layerdb/sha256/<chain id hex>/diff        "sha256:<diff id>" of the layer
                                 /cache-id    the layer's directory under overlay2/
                                 /parent      "sha256:<parent chain id>" (absent for a base)
                                 /size        bytes of file data in the layer

Layers are shared between images by chain id (image-spec config.md "Layer ChainID"): a layer
already held is not extracted again.

A load is one transaction. Every blob is checked against its digest before it is used, every
layer is extracted into a staging directory and its diff id checked, and only when all images
of the archive are good are the layerdb entries, configs and finally repositories.json (the
commit point, replaced atomically) written. Any failure on the way - a bad digest, a hostile
member, a full disk, an interrupt - undoes everything the load made: no layer directory, no l/
link, no layerdb entry, no config, no tag. A load killed outright leaves at most a staging
directory, removed by the next load.

Callers hold the engine lock (Layout.locked()): the store does not take it itself, because
flock(2) on a second descriptor in the same process would wait for the caller's own lock.
"""

from __future__ import annotations

import builtins
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.images.docker_archive import is_docker_archive, read_docker_archive
from reference_runtime.engine.images.layertar import LayerError, Readable, extract_layer
from reference_runtime.engine.images.oci_layout import read_oci_layout
from reference_runtime.engine.images.source import (
    Archive,
    ImageSource,
    LayerBlob,
    check_digest,
    hash_stream,
    parse_ref,
    short,
)
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.overlay2 import MAX_LOWERS, Overlay2

_HEX = re.compile(r"^[a-f0-9]{64}$")
_SHORT_ID = re.compile(r"^[a-f0-9]{12,64}$")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<hex>" of the config blob
    repo_tags: tuple[str, ...]
    config: dict[str, Any]  # the image config JSON
    chain_ids: tuple[str, ...]  # "sha256:...", bottom first
    top_layer: str  # cache id of the top layer (overlay2/<top_layer>)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class _Prefixed(io.RawIOBase):
    """A stream with its first bytes (read to sniff the compression) put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        super().__init__()
        self.head = head
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.raw.read(len(view))
        view[: len(data)] = data
        return len(data)


@dataclass
class _NewLayer:
    cache_id: str
    diff_id: str
    parent: str | None  # chain id
    size: int


class _Undo:
    """What a load made so far, undone newest first if it does not complete."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self.steps.append(step)

    def run(self) -> None:
        for step in reversed(self.steps):
            # Best effort: one step failing (the disk that filled up is still full) must not
            # keep the others from running.
            with contextlib.suppress(OSError, EngineError):
                step()


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes ``path`` by rename(2) of a complete temporary file beside it: a reader sees the old
    file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class ImageStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.overlay = Overlay2(layout)
        self.db = layout.image_db
        self.content = self.db / "imagedb" / "content" / "sha256"
        self.layerdb = self.db / "layerdb" / "sha256"
        self.repositories_path = self.db / "repositories.json"

    # -- reading the store ---------------------------------------------------------------------

    def _repositories(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.repositories_path.read_bytes())
        except FileNotFoundError:
            return {}
        repos = data.get("Repositories") if isinstance(data, dict) else None
        return repos if isinstance(repos, dict) else {}

    def _tags_of(self, repos: dict[str, dict[str, str]], image_id: str) -> tuple[str, ...]:
        return tuple(sorted(ref for tags in repos.values() for ref, i in tags.items()
                            if i == image_id))  # fmt: skip

    def _cache_id(self, chain_id: str) -> str | None:
        entry = self.layerdb / _hex(chain_id)
        try:
            cache_id = (entry / "cache-id").read_text().strip()
        except FileNotFoundError:
            return None
        if not self.overlay.diff_dir(cache_id).is_dir():
            raise EngineError(f"failed to read layer {short(chain_id)}: layer directory "
                              f"{cache_id} is missing (the store is damaged)")  # fmt: skip
        return cache_id

    def _image(self, image_hex: str, repos: dict[str, dict[str, str]]) -> Image:
        image_id = f"sha256:{image_hex}"
        config = json.loads((self.content / image_hex).read_bytes())
        chains = chain_ids(list(config["rootfs"]["diff_ids"]))
        top = self._cache_id(chains[-1])
        if top is None:
            raise EngineError(f"failed to read image {short(image_id)}: its top layer is not "
                              f"in the layer store")  # fmt: skip
        return Image(image_id, self._tags_of(repos, image_id), config, tuple(chains), top)

    def _ids(self) -> list[str]:
        if not self.content.is_dir():
            return []
        return sorted(p.name for p in self.content.iterdir() if _HEX.match(p.name))

    def list(self) -> list[Image]:
        repos = self._repositories()
        images = [self._image(h, repos) for h in self._ids()]
        return sorted(images, key=lambda i: (i.repo_tags == (), i.repo_tags, i.id))

    def _resolve(self, ref: str) -> tuple[str, bool]:
        """(image hex, whether ``ref`` named a tag)."""
        ids = self._ids()
        bare = ref.removeprefix("sha256:")
        if _HEX.match(bare) and bare in ids:
            return bare, False
        parsed = parse_ref(ref) if not ref.startswith("sha256:") else None
        if parsed is not None:
            name, tag = parsed
            image_id = self._repositories().get(name, {}).get(f"{name}:{tag}")
            if image_id and _hex(image_id) in ids:
                return _hex(image_id), True
        if _SHORT_ID.match(bare):
            found = [i for i in ids if i.startswith(bare)]
            if len(found) == 1:
                return found[0], False
            if found:
                raise EngineError(f"failed to find image {ref}: the id prefix is ambiguous")
        raise EngineError(f"failed to find image {ref}: no such image")

    def get(self, ref: str) -> Image:
        image_hex, _ = self._resolve(ref)
        return self._image(image_hex, self._repositories())

    def inspect(self, ref: str) -> dict[str, Any]:
        """docker image inspect's shape."""
        image = self.get(ref)
        config = image.config
        size = 0
        for chain in image.chain_ids:
            with contextlib.suppress(FileNotFoundError, ValueError):
                size += int((self.layerdb / _hex(chain) / "size").read_text())
        return {
            "Id": image.id,
            "RepoTags": list(image.repo_tags),
            "RepoDigests": [],
            "Parent": "",
            "Comment": "",
            "Created": config.get("created", ""),
            "Author": config.get("author", ""),
            "Config": config.get("config") or {},
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""),
            "Size": size,
            "GraphDriver": {"Name": "overlay2",
                            "Data": self.overlay.graph_driver_data(image.top_layer)},
            "RootFS": {"Type": "layers", "Layers": list(config["rootfs"]["diff_ids"])},
        }  # fmt: skip

    # -- loading -------------------------------------------------------------------------------

    def load(self, path: Path, *, name: str | None = None) -> builtins.list[Image]:
        """Loads every image of an OCI image layout (directory or tar) or a ``docker save``
        tarball (plain or gzip). ``name``: the repository for OCI entries that carry only a tag
        in org.opencontainers.image.ref.name (as umoci and skopeo write them); without it such
        entries load untagged."""
        path = Path(path)
        with Archive(path) as archive:
            if is_docker_archive(archive):
                sources = read_docker_archive(archive)
            else:
                sources = read_oci_layout(archive, name)
            return self._register(sources)

    def _diff_ids(self, src: ImageSource) -> builtins.list[str]:
        config = src.config
        if config.get("os", "linux") != "linux":
            raise EngineError(f"failed to load image {src.name}: it is for {config.get('os')!r}, "
                              f"not linux")  # fmt: skip
        rootfs = config.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise EngineError(f"failed to load image {src.name}: config has no rootfs of type "
                              f"layers")  # fmt: skip
        diff_ids = rootfs.get("diff_ids")
        if not isinstance(diff_ids, list):
            raise EngineError(f"failed to load image {src.name}: config has no diff_ids list")
        diff_ids = [check_digest(d, "diff id", src.name) for d in diff_ids]
        if len(diff_ids) != len(src.layers):
            raise EngineError(f"failed to load image {src.name}: config lists {len(diff_ids)} "
                              f"diff ids for {len(src.layers)} layers")  # fmt: skip
        if not diff_ids:
            raise EngineError(f"failed to load image {src.name}: it has no layers")
        if len(diff_ids) > MAX_LOWERS - 1:  # the container's init layer is one more lower
            raise EngineError(f"failed to load image {src.name}: {len(diff_ids)} layers, more "
                              f"than overlay2 mounts ({MAX_LOWERS - 1})")  # fmt: skip
        return diff_ids

    def _verify_blob(self, name: str, layer: LayerBlob) -> None:
        assert layer.digest is not None
        with layer.open() as f:
            got, size = hash_stream(f)
        if layer.size is not None and size != layer.size:
            raise EngineError(f"failed to load image {name}: layer {short(layer.digest)}: size "
                              f"mismatch (descriptor says {layer.size} bytes, blob has "
                              f"{size})")  # fmt: skip
        if got != layer.digest:
            raise EngineError(f"failed to load image {name}: layer {short(layer.digest)}: digest "
                              f"mismatch (got {short(got)})")  # fmt: skip

    @staticmethod
    def _uncompressed(raw: IO[bytes], fail: Callable[[str], EngineError]) -> Readable:
        # By content, not media type: docker's "rootfs.diff.tar.gzip" is named so even where a
        # tool stored it uncompressed (containerd decompresses by magic number too).
        head = raw.read(4)
        if head.startswith(_ZSTD_MAGIC):
            raise fail("zstd-compressed layers are not supported (Python's stdlib has no zstd)")
        prefixed = io.BufferedReader(_Prefixed(head, raw), buffer_size=1 << 20)
        if head.startswith(_GZIP_MAGIC):
            return gzip.GzipFile(fileobj=prefixed, mode="rb")
        return prefixed

    def _extract(self, src: ImageSource, layer: LayerBlob, diff_id: str, parent: str | None,
                 undo: _Undo) -> tuple[str, int]:  # fmt: skip
        what = short(layer.digest or diff_id)

        def fail(reason: str) -> EngineError:
            return EngineError(f"failed to load image {src.name}: layer {what}: {reason}")

        if layer.digest is not None:
            self._verify_blob(src.name, layer)
        staging = self.overlay.stage_layer()
        undo.add(lambda: self.overlay.discard_staged(staging))
        try:
            with layer.open() as raw:
                result = extract_layer(self._uncompressed(raw, fail), staging / "diff")
        except LayerError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(_reason(exc)) from None
        if result.diff_id != diff_id:
            raise fail(f"diff id mismatch (the config says {short(diff_id)}, the layer is "
                       f"{short(result.diff_id)})")  # fmt: skip
        cache_id = self.overlay.commit_layer(staging, parent)
        undo.add(lambda: self.overlay.remove_layer(cache_id))
        return cache_id, result.size

    def _mkdirs(self, undo: _Undo) -> None:
        for d in (self.content, self.layerdb):
            missing = []
            p = d
            while not p.exists():
                missing.append(p)
                p = p.parent
            for m in reversed(missing):
                m.mkdir(mode=0o700)
                undo.add(lambda m=m: m.rmdir())  # type: ignore[misc]

    def _write_layerdb(self, chain: str, layer: _NewLayer, undo: _Undo) -> None:
        final = self.layerdb / _hex(chain)
        tmp = self.layerdb / f".tmp-{_hex(chain)}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir(mode=0o700)
            (tmp / "diff").write_text(layer.diff_id)
            (tmp / "cache-id").write_text(layer.cache_id)
            if layer.parent is not None:
                (tmp / "parent").write_text(layer.parent)
            (tmp / "size").write_text(str(layer.size))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        undo.add(lambda: shutil.rmtree(final))

    def _write_config(self, image_hex: str, blob: bytes, undo: _Undo) -> None:
        path = self.content / image_hex
        if path.exists():
            return
        _write_atomic(path, blob)
        undo.add(path.unlink)

    def _register(self, sources: builtins.list[ImageSource]) -> builtins.list[Image]:
        undo = _Undo()
        name = sources[0].name if sources else ""
        try:
            # A load killed half way (SIGKILL, power) left only staging directories.
            self.overlay.collect_staged()
            repos = self._repositories()
            new: dict[str, _NewLayer] = {}
            images: builtins.list[tuple[ImageSource, str, builtins.list[str], str]] = []
            for src in sources:
                name = src.name
                diff_ids = self._diff_ids(src)
                chains = chain_ids(diff_ids)
                parent: str | None = None
                for i, (layer, diff_id, chain) in enumerate(
                    zip(src.layers, diff_ids, chains, strict=True)
                ):
                    known = self._cache_id(chain) or (new[chain].cache_id if chain in new else None)
                    if known is not None:
                        if layer.digest is not None:  # checked even when it is not needed
                            self._verify_blob(src.name, layer)
                        parent = known
                        continue
                    cache_id, size = self._extract(src, layer, diff_id, parent, undo)
                    new[chain] = _NewLayer(cache_id, diff_id, chains[i - 1] if i else None, size)
                    parent = cache_id
                assert parent is not None
                image_hex = hashlib.sha256(src.config_blob).hexdigest()
                images.append((src, image_hex, chains, parent))
            self._mkdirs(undo)
            for chain, made in new.items():
                self._write_layerdb(chain, made, undo)
            for src, image_hex, _, _ in images:
                name = src.name
                self._write_config(image_hex, src.config_blob, undo)
                for ref in src.repo_tags:
                    repo = ref.rpartition(":")[0]
                    repos.setdefault(repo, {})[ref] = f"sha256:{image_hex}"
            if any(src.repo_tags for src, _, _, _ in images):
                self.db.mkdir(parents=True, exist_ok=True)
                _write_atomic(self.repositories_path,
                              json.dumps({"Repositories": repos}).encode())  # fmt: skip
        except OSError as exc:
            undo.run()
            raise EngineError(f"failed to load image {name}: {_reason(exc)}") from None
        except BaseException:
            undo.run()
            raise
        return [
            Image(
                f"sha256:{h}", self._tags_of(repos, f"sha256:{h}"), src.config, tuple(chains), top
            )
            for src, h, chains, top in images
        ]

    # -- removing ------------------------------------------------------------------------------

    def remove(
        self, ref: str, *, in_use: Callable[[str], builtins.list[str]]
    ) -> builtins.list[str]:
        """Removes the tag ``ref`` names, or the image if that was its last tag (or ``ref`` is
        an id): its config and every layer no other image uses. Refused while ``in_use(image
        id)`` names containers. Returns the removed ids (image id, then chain ids; empty when
        only a tag went)."""
        image_hex, by_tag = self._resolve(ref)
        image = self._image(image_hex, self._repositories())
        users = in_use(image.id)
        if users:
            raise EngineError(f"failed to remove image {ref}: in use by container "
                              f"{', '.join(users)}")  # fmt: skip
        repos = self._repositories()
        if by_tag and len(image.repo_tags) > 1:
            parsed = parse_ref(ref)
            assert parsed is not None
            repo, tag = parsed
            del repos[repo][f"{repo}:{tag}"]
            self._save_repositories(repos)
            return []
        for repo in list(repos):
            repos[repo] = {r: i for r, i in repos[repo].items() if i != image.id}
            if not repos[repo]:
                del repos[repo]
        # Untag first, then the config, then layers: an interruption leaves unused layers at
        # worst, never a tag pointing at nothing.
        self._save_repositories(repos)
        (self.content / image_hex).unlink()
        kept: set[str] = set()
        for other in self._ids():
            config = json.loads((self.content / other).read_bytes())
            kept.update(chain_ids(list(config["rootfs"]["diff_ids"])))
        removed = [image.id]
        for chain in reversed(image.chain_ids):
            if chain in kept:
                continue
            cache_id = self._cache_id(chain)
            entry = self.layerdb / _hex(chain)
            gone = self.layerdb / f".rm-{_hex(chain)}"
            os.rename(entry, gone)
            if cache_id is not None:
                self.overlay.remove_layer(cache_id)
            shutil.rmtree(gone)
            removed.append(chain)
        return removed

    def _save_repositories(self, repos: dict[str, dict[str, str]]) -> None:
        try:
            _write_atomic(self.repositories_path, json.dumps({"Repositories": repos}).encode())
        except OSError as exc:
            raise EngineError(f"failed to write {self.repositories_path}: {_reason(exc)}") from None
