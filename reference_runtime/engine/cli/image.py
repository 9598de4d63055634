"""``image``: load, build-test, ls, rm, inspect. There is no registry here, and none is reached:
images come from OCI layouts and ``docker save`` archives (skopeo and umoci write both)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from reference_runtime.engine.containers import ContainerStore
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.lifecycle import Settings

TEST_IMAGES = ("bulkhead/busybox:test", "bulkhead/httpd:test")


def register(verbs: Any) -> None:
    p = verbs.add_parser("image", help="manage images")
    sub = p.add_subparsers(dest="image_verb", required=True, metavar="VERB")
    q = sub.add_parser("load", help="load an OCI layout (dir or tar) or a docker save archive")
    q.add_argument("-i", "--input", required=True, type=Path)
    q.set_defaults(handler=load)
    q = sub.add_parser("build-test", help=f"build and load {' and '.join(TEST_IMAGES)}")
    q.set_defaults(handler=build_test)
    q = sub.add_parser("ls", help="list images")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=ls)
    q = sub.add_parser("rm", help="remove images no container uses")
    q.add_argument("images", nargs="+", metavar="image")
    q.set_defaults(handler=rm)
    q = sub.add_parser("inspect", help="an image's record as JSON")
    q.add_argument("images", nargs="+", metavar="image")
    q.set_defaults(handler=inspect)


def _store(settings: Settings) -> Any:
    from reference_runtime.engine.images.store import ImageStore

    return ImageStore(settings.layout)


def _load(settings: Settings, path: Path) -> None:
    if not path.exists():
        raise EngineError(f"failed to load image {path}: no such file or directory")
    with settings.layout.locked():
        for image in _store(settings).load(path):
            for tag in image.repo_tags or (image.id,):
                print(f"Loaded image: {tag}")


def load(settings: Settings, args: argparse.Namespace) -> int:
    _load(settings, args.input)
    return 0


def build_test(settings: Settings, args: argparse.Namespace) -> int:
    """The suite's own test images (bulkhead.images writes them; the engine only loads)."""
    from bulkhead import images

    built = {TEST_IMAGES[0]: images.busybox_test_image(), TEST_IMAGES[1]: images.httpd_test_image()}
    with tempfile.TemporaryDirectory(prefix="build-test-", dir=settings.layout.root) as tmp:
        for ref, spec in built.items():
            layout = images.write_oci_layout(spec, Path(tmp) / ref.replace("/", "_"), ref)
            _load(settings, layout)
    return 0


def ls(settings: Settings, args: argparse.Namespace) -> int:
    rows = _store(settings).list()
    if args.json:
        json.dump([{"Id": i.id, "RepoTags": list(i.repo_tags)} for i in rows], sys.stdout)
        sys.stdout.write("\n")
        return 0
    table = [("REPOSITORY", "TAG", "IMAGE ID")]
    for image in rows:
        for tag in image.repo_tags or ("<none>:<none>",):
            repo, _, name = tag.rpartition(":")
            table.append((repo, name, image.id.removeprefix("sha256:")[:12]))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for row in table:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def rm(settings: Settings, args: argparse.Namespace) -> int:
    users = ContainerStore(settings.layout).users_of
    with settings.layout.locked():
        for ref in args.images:
            for removed in _store(settings).remove(ref, in_use=users):
                print(f"Deleted: {removed}")
    return 0


def inspect(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    json.dump([store.inspect(ref) for ref in args.images], sys.stdout, indent=4)
    sys.stdout.write("\n")
    return 0
