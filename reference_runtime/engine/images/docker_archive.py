"""Reading a ``docker save`` tarball (plain or gzip).

manifest.json lists each image as {Config, RepoTags, Layers}: the config file is named by its
own sha256 ("<hex>.json", or "blobs/sha256/<hex>" as docker 25 writes it), which is checked here;
layer tars carry no digest of their own in this format, so each is checked against the config's
rootfs.diff_ids while it is extracted (the store does that).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.images.source import (
    Archive,
    ImageSource,
    LayerBlob,
    normalize_ref,
    parse_json,
    verify,
)

_CONFIG_NAME = re.compile(r"^(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$")


def is_docker_archive(archive: Archive) -> bool:
    return archive.exists("manifest.json")


def read_docker_archive(archive: Archive) -> list[ImageSource]:
    where = archive.where
    manifest = parse_json(archive.read("manifest.json"), "manifest.json", where)
    if not isinstance(manifest, list) or not manifest:
        raise EngineError(f"failed to load image {where}: manifest.json lists no image")
    return [_image(archive, entry) for entry in manifest]


def _image(archive: Archive, entry: Any) -> ImageSource:
    where = archive.where
    if not isinstance(entry, dict):
        raise EngineError(f"failed to load image {where}: manifest.json entry is not an object")
    tags = entry.get("RepoTags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise EngineError(f"failed to load image {where}: RepoTags is not a list of names")
    repo_tags = tuple(normalize_ref(t, where) for t in tags)
    name = repo_tags[0] if repo_tags else where
    config_name = entry.get("Config")
    matched = _CONFIG_NAME.match(config_name) if isinstance(config_name, str) else None
    if matched is None or not isinstance(config_name, str):
        raise EngineError(f"failed to load image {name}: config file name {config_name!r} is "
                          f"not its digest")  # fmt: skip
    digest = f"sha256:{matched.group(1)}"
    if not archive.exists(config_name):
        raise EngineError(f"failed to load image {name}: config {config_name} missing")
    config_blob = archive.read(config_name)
    verify(config_blob, digest, None, "config", name)
    config = parse_json(config_blob, "config", name)
    if not isinstance(config, dict):
        raise EngineError(f"failed to load image {name}: config is not a JSON object")
    paths = entry.get("Layers")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise EngineError(f"failed to load image {name}: Layers is not a list of files")
    layers = []
    for path in paths:
        if not archive.exists(path):
            raise EngineError(f"failed to load image {name}: layer {path} missing from the "
                              f"archive")  # fmt: skip
        layers.append(LayerBlob(functools.partial(archive.open, path), "", None, None))
    return ImageSource(name, repo_tags, config_blob, config, tuple(layers))
