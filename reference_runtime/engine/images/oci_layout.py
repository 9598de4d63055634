"""Reading an OCI image layout (image-spec image-layout.md), as a directory or a tar of one.

index.json lists manifests (or nested indexes, e.g. one per platform); each manifest names a
config and layer blobs under blobs/sha256/. The index, every manifest and every config are
checked against their descriptors (size, then sha256) before they are parsed; layer blobs are
checked by the store before they are extracted, and their diff ids after.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.images.source import (
    Archive,
    ImageSource,
    LayerBlob,
    check_digest,
    normalize_ref,
    parse_json,
    verify,
)

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
# docker's schema 2 types, which skopeo and docker write into OCI layouts too.
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
})  # fmt: skip
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
_MAX_NESTING = 4


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


def _matches_platform(descriptor: dict[str, Any]) -> bool:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return True
    return platform.get("os") in (None, "linux") and platform.get("architecture") in (
        None, _architecture()
    )  # fmt: skip


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


class _Reader:
    def __init__(self, archive: Archive, base_name: str | None) -> None:
        self.archive = archive
        self.where = archive.where
        self.base_name = base_name

    def _blob(self, descriptor: Any, what: str, where: str) -> tuple[str, bytes]:
        if not isinstance(descriptor, dict):
            raise EngineError(f"failed to load image {where}: {what} descriptor is not an object")
        digest = check_digest(descriptor.get("digest"), what, where)
        size = descriptor.get("size")
        if not isinstance(size, int) or size < 0:
            raise EngineError(f"failed to load image {where}: {what} descriptor has no size")
        if not self.archive.exists(_blob_name(digest)):
            raise EngineError(f"failed to load image {where}: {what} {digest}: blob missing "
                              f"from the layout")  # fmt: skip
        data = self.archive.read(_blob_name(digest))
        verify(data, digest, size, what, where)
        return digest, data

    def _names(self, descriptor: dict[str, Any]) -> tuple[str, ...]:
        annotations = descriptor.get("annotations") or {}
        if not isinstance(annotations, dict):
            return ()
        full = annotations.get(ANNOTATION_CONTAINERD_NAME)
        ref = annotations.get(ANNOTATION_REF_NAME)
        if isinstance(full, str) and full:
            return (normalize_ref(full, self.where),)
        if isinstance(ref, str) and ref:
            # annotations.md: ref.name is a tag ("latest", as skopeo and umoci write it) or a
            # whole reference. A bare tag names an image only with a base name given
            # (containerd's `ctr import --base-name`); otherwise the image is loaded untagged.
            if "/" in ref or ":" in ref:
                return (normalize_ref(ref, self.where),)
            if self.base_name:
                return (normalize_ref(f"{self.base_name}:{ref}", self.where),)
        return ()

    def images(self) -> list[ImageSource]:
        if not self.archive.exists("oci-layout"):
            raise EngineError(f"failed to load image {self.where}: not an OCI image layout or "
                              f"docker save archive (no oci-layout, no manifest.json)")  # fmt: skip
        layout = parse_json(self.archive.read("oci-layout"), "oci-layout", self.where)
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise EngineError(f"failed to load image {self.where}: unsupported image layout "
                              f"version in oci-layout")  # fmt: skip
        if not self.archive.exists("index.json"):
            raise EngineError(f"failed to load image {self.where}: index.json missing")
        index = parse_json(self.archive.read("index.json"), "index.json", self.where)
        out: list[ImageSource] = []
        for descriptor in self._manifests(index, "index.json"):
            names = self._names(descriptor)
            out.extend(self._resolve(descriptor, names, 0))
        if not out:
            raise EngineError(f"failed to load image {self.where}: no image for linux/"
                              f"{_architecture()} in the layout")  # fmt: skip
        return out

    def _manifests(self, index: Any, what: str) -> list[dict[str, Any]]:
        if not isinstance(index, dict) or index.get("schemaVersion") != 2:
            raise EngineError(f"failed to load image {self.where}: {what}: schemaVersion must "
                              f"be 2")  # fmt: skip
        manifests = index.get("manifests")
        if not isinstance(manifests, list):
            raise EngineError(f"failed to load image {self.where}: {what}: no manifests list")
        return [m for m in manifests if isinstance(m, dict) and _matches_platform(m)]

    def _resolve(self, descriptor: dict[str, Any], names: tuple[str, ...],
                 depth: int) -> list[ImageSource]:  # fmt: skip
        where = names[0] if names else self.where
        media = descriptor.get("mediaType")
        if media in (MEDIA_INDEX, DOCKER_MANIFEST_LIST):
            if depth >= _MAX_NESTING:
                raise EngineError(f"failed to load image {where}: indexes nested too deep")
            _, data = self._blob(descriptor, "index", where)
            nested = self._manifests(parse_json(data, "index", where), "nested index")
            # One image per platform; the first that fits this machine is it.
            for inner in nested:
                found = self._resolve(inner, names, depth + 1)
                if found:
                    return found[:1]
            return []
        if media not in (MEDIA_MANIFEST, DOCKER_MANIFEST):
            raise EngineError(f"failed to load image {where}: unsupported manifest media type "
                              f"{media!r}")  # fmt: skip
        _, data = self._blob(descriptor, "manifest", where)
        return [self._image(parse_json(data, "manifest", where), names, where)]

    def _image(self, manifest: Any, names: tuple[str, ...], where: str) -> ImageSource:
        if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
            raise EngineError(f"failed to load image {where}: manifest: schemaVersion must be 2")
        config_desc = manifest.get("config")
        if not isinstance(config_desc, dict) or config_desc.get("mediaType") not in (
            MEDIA_CONFIG, DOCKER_CONFIG
        ):  # fmt: skip
            raise EngineError(f"failed to load image {where}: manifest: config is not an image "
                              f"config")  # fmt: skip
        _, config_blob = self._blob(config_desc, "config", where)
        config = parse_json(config_blob, "config", where)
        if not isinstance(config, dict):
            raise EngineError(f"failed to load image {where}: config is not a JSON object")
        descriptors = manifest.get("layers")
        if not isinstance(descriptors, list):
            raise EngineError(f"failed to load image {where}: manifest has no layers list")
        layers = []
        for d in descriptors:
            if not isinstance(d, dict):
                raise EngineError(f"failed to load image {where}: layer descriptor is not an "
                                  f"object")  # fmt: skip
            media = d.get("mediaType")
            digest = check_digest(d.get("digest"), "layer", where)
            size = d.get("size")
            if media not in LAYER_TYPES:
                raise EngineError(f"failed to load image {where}: layer {digest}: unsupported "
                                  f"media type {media!r}")  # fmt: skip
            if not isinstance(size, int) or size < 0:
                raise EngineError(f"failed to load image {where}: layer {digest}: no size")
            name = _blob_name(digest)
            if not self.archive.exists(name):
                raise EngineError(f"failed to load image {where}: layer {digest}: blob missing "
                                  f"from the layout")  # fmt: skip
            opener = functools.partial(self.archive.open, name)
            layers.append(LayerBlob(opener, str(media), digest, size))
        return ImageSource(where, names, config_blob, config, tuple(layers))


def read_oci_layout(archive: Archive, base_name: str | None = None) -> list[ImageSource]:
    """Every image of the layout for this machine's platform."""
    return _Reader(archive, base_name).images()


def is_oci_layout(archive: Archive) -> bool:
    return archive.exists("oci-layout")
