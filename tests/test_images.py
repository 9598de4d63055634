"""The judge's test-image writer: what it writes is a valid OCI image layout / docker-save tar,
checked against image-spec's rules by hand, and the same spec always gives the same bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bulkhead import images

# image-spec descriptor.md: digest ::= algorithm ":" encoded; sha256's encoded is [a-f0-9]{64}.
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# image-spec annotations.md, org.opencontainers.image.ref.name: ref ::= component ("/" component)*
# component ::= alphanum (separator alphanum)*, separator ::= [-._:@+] | "--".
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
REF_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(layout: Path, descriptor: dict[str, Any]) -> bytes:
    """A blob, checked against its descriptor (descriptor.md: size and digest MUST match)."""
    assert DIGEST.match(descriptor["digest"]), descriptor
    name = str(descriptor["digest"]).split(":")[1]
    data = (layout / "blobs" / "sha256" / name).read_bytes()
    assert len(data) == descriptor["size"]
    assert _sha(data) == descriptor["digest"]
    return data


def _members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        return tar.getmembers()


def _files(tar_bytes: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                out[m.name] = f.read()
    return out


def _validate_layout(layout: Path) -> list[tuple[dict[str, Any], dict[str, Any], list[bytes]]]:
    """Every rule of image-layout.md, image-index.md, manifest.md and config.md that can be
    checked by hand; returns (index entry, config, uncompressed layer tars) per image."""
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == images.MEDIA_INDEX
    out = []
    referenced = set()
    for entry in index["manifests"]:
        assert entry["mediaType"] == images.MEDIA_MANIFEST
        assert REF_NAME.match(entry["annotations"][images.ANNOTATION_REF_NAME])
        assert entry["platform"]["os"] == "linux" and entry["platform"]["architecture"]
        manifest = json.loads(_blob(layout, entry))
        referenced.add(entry["digest"])
        assert manifest["schemaVersion"] == 2
        assert manifest["mediaType"] == images.MEDIA_MANIFEST
        assert manifest["config"]["mediaType"] == images.MEDIA_CONFIG
        config = json.loads(_blob(layout, manifest["config"]))
        referenced.add(manifest["config"]["digest"])
        # config.md: architecture, os and rootfs are REQUIRED; rootfs.type MUST be "layers".
        assert (
            config["os"] == "linux" and config["architecture"] == entry["platform"]["architecture"]
        )
        assert config["rootfs"]["type"] == "layers"
        tars = []
        for layer in manifest["layers"]:
            assert layer["mediaType"] in (images.MEDIA_LAYER, images.MEDIA_LAYER_GZIP)
            blob = _blob(layout, layer)
            referenced.add(layer["digest"])
            tars.append(gzip.decompress(blob) if layer["mediaType"].endswith("+gzip") else blob)
        # config.md: diff_ids are the digests of the uncompressed layers, in order.
        assert config["rootfs"]["diff_ids"] == [_sha(t) for t in tars]
        assert len(config["history"]) == len(tars)
        out.append((entry, config, tars))
    # Nothing in blobs/ that nothing points to (a fresh layout has no garbage).
    stored = {"sha256:" + p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert stored == referenced
    return out


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "gzip"])
def test_the_oci_layout_follows_image_spec(tmp_path: Path, compress: bool) -> None:
    layout = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci",
                                     images.BUSYBOX_REF, gzip=compress)  # fmt: skip
    [(entry, config, tars)] = _validate_layout(layout)
    assert entry["annotations"] == {
        images.ANNOTATION_REF_NAME: "test",
        images.ANNOTATION_CONTAINERD_NAME: images.BUSYBOX_REF,
    }
    assert config["config"]["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert config["config"]["Cmd"] == ["sh"]
    assert len(tars) == 3
    assert images.image_id(images.busybox_test_image()) == _sha(
        _blob(layout, json.loads(_blob(layout, entry))["config"])
    )


def test_a_second_image_joins_the_layout_and_a_rewrite_replaces_its_entry(tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    images.write_oci_layout(images.busybox_test_image(), layout, images.BUSYBOX_REF)
    images.write_oci_layout(images.httpd_test_image(), layout, images.HTTPD_REF, gzip=True)
    images.write_oci_layout(images.httpd_test_image(), layout, images.HTTPD_REF, gzip=True)
    found = _validate_layout(layout)
    names = [e["annotations"][images.ANNOTATION_CONTAINERD_NAME] for e, _, _ in found]
    assert names == [images.BUSYBOX_REF, images.HTTPD_REF]
    (_, busybox, _), (_, httpd, tars) = found
    # httpd shares busybox's layers (same diff ids) and adds one.
    assert httpd["rootfs"]["diff_ids"][:3] == busybox["rootfs"]["diff_ids"]
    assert _files(tars[3])["www/index.html"] == images.HTTPD_INDEX
    assert httpd["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert httpd["config"]["Cmd"][0] == "httpd"


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_same_spec_gives_the_same_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        images.write_oci_layout(images.httpd_test_image(), tmp_path / name, images.HTTPD_REF,
                                gzip=True)  # fmt: skip
        images.write_docker_archive(images.httpd_test_image(), tmp_path / f"{name}.tar",
                                    images.HTTPD_REF)  # fmt: skip
    assert _all_files(tmp_path / "a") == _all_files(tmp_path / "b")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    # Control: a different spec changes the digests.
    other = images.httpd_test_image()
    other.layers[-1][-1].data = b"other\n"
    assert images.image_id(other) != images.image_id(images.httpd_test_image())


def test_layer_members_are_fixed_in_time_owner_and_order() -> None:
    image = images.busybox_test_image()
    tar = images.layer_tar(image.layers[0], 1_700_000_000)
    members = _members(tar)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (1_700_000_000, 0, 0, "", "")
    }
    names = [m.name for m in members]
    assert names == sorted(names)
    busybox = next(m for m in members if m.name == "bin/busybox")
    assert busybox.mode == 0o755
    assert _files(tar)["bin/busybox"] == Path("/bin/busybox").read_bytes()
    sh = next(m for m in members if m.name == "bin/sh")
    assert sh.islnk() and sh.linkname == "bin/busybox"
    assert names.index("bin/busybox") < names.index("bin/sh")
    httpd = next(m for m in members if m.name == "bin/httpd")
    assert httpd.issym() and httpd.linkname == "busybox"
    tmp = next(m for m in members if m.name == "tmp")
    assert tmp.isdir() and tmp.mode == 0o1777


def test_the_busybox_image_holds_the_entrypoint_a_whiteout_and_an_opaque_dir() -> None:
    image = images.busybox_test_image()
    second = _members(images.layer_tar(image.layers[1], 0))
    third = _members(images.layer_tar(image.layers[2], 0))
    names2 = {m.name: m for m in second}
    assert names2["docker-entrypoint.sh"].mode == 0o755
    assert names2["docker-entrypoint.d/10-hello.sh"].mode == 0o755
    assert {"etc/doomed", "opt/lower/a", "opt/lower/b"} <= set(names2)
    names3 = [m.name for m in third]
    assert "etc/.wh.doomed" in names3
    # The opaque marker comes before the sibling it must not hide.
    assert names3.index("opt/lower/.wh..wh..opq") < names3.index("opt/lower/c")
    script = _files(images.layer_tar(image.layers[1], 0))["docker-entrypoint.sh"].decode()
    assert script.startswith("#!/bin/sh\n") and 'exec "$@"' in script


def test_the_docker_archive_is_what_docker_save_writes(tmp_path: Path) -> None:
    archive = images.write_docker_archive(images.busybox_test_image(), tmp_path / "a.tar",
                                          images.BUSYBOX_REF)  # fmt: skip
    files = _files(archive.read_bytes())
    [manifest] = json.loads(files["manifest.json"])
    assert manifest["RepoTags"] == [images.BUSYBOX_REF]
    config = files[manifest["Config"]]
    # docker save names the config by its digest, which is the image id.
    assert manifest["Config"] == _sha(config).split(":")[1] + ".json"
    assert _sha(config) == images.image_id(images.busybox_test_image())
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert [_sha(files[p]) for p in manifest["Layers"]] == diff_ids
    assert json.loads(files["repositories"]) == {
        "bulkhead/busybox": {"test": manifest["Layers"][-1].split("/")[0]}
    }
    gz = images.write_docker_archive(images.busybox_test_image(), tmp_path / "a.tar.gz",
                                     images.BUSYBOX_REF, gzip=True)  # fmt: skip
    assert gzip.decompress(gz.read_bytes()) == archive.read_bytes()


def test_chain_ids_follow_image_spec() -> None:
    a, b = _sha(b"a"), _sha(b"b")
    assert images.chain_ids([a]) == [a]
    assert images.chain_ids([a, b]) == [a, _sha(f"{a} {b}".encode())]


@pytest.mark.parametrize(("ref", "expected"), [
    ("bulkhead/busybox:test", ("bulkhead/busybox", "test")),
    ("busybox", ("busybox", "latest")),
    ("localhost:5000/busybox", ("localhost:5000/busybox", "latest")),
    ("localhost:5000/busybox:1", ("localhost:5000/busybox", "1")),
])  # fmt: skip
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert images.split_ref(ref) == expected


def _oci_state(layout: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_bytes())
    path = layout / "blobs" / "sha256"
    manifest = json.loads((path / index["manifests"][-1]["digest"].split(":")[1]).read_bytes())
    return (
        index,
        manifest,
        json.loads((path / manifest["config"]["digest"].split(":")[1]).read_bytes()),
    )


def _mismatches(layout: Path) -> list[str]:
    """Which descriptors' blobs do not match (digest, size) or are missing."""
    index = json.loads((layout / "index.json").read_bytes())
    entry = index["manifests"][-1]
    data = (layout / "blobs" / "sha256" / entry["digest"][7:]).read_bytes()
    if _sha(data) != entry["digest"]:
        return [f"digest {entry['mediaType']}"]
    _, manifest, _ = _oci_state(layout)
    bad = []
    for d in [manifest["config"], *manifest["layers"]]:
        path = layout / "blobs" / "sha256" / d["digest"].split(":")[1]
        if not path.exists():
            bad.append(f"missing {d['mediaType']}")
            continue
        data = path.read_bytes()
        if len(data) != d["size"]:
            bad.append(f"size {d['mediaType']}")
        elif _sha(data) != d["digest"]:
            bad.append(f"digest {d['mediaType']}")
    return bad


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "gzip"])
@pytest.mark.parametrize(("what", "expected"), [
    ("layer-digest", ["digest {layer}"]),
    ("config-digest", [f"digest {images.MEDIA_CONFIG}"]),
    ("manifest-digest", [f"digest {images.MEDIA_MANIFEST}"]),
    ("missing-layer", ["missing {layer}"]),
    ("truncated-layer", ["size {layer}"]),
    ("diff-id", []),
])  # fmt: skip
def test_tamper_breaks_exactly_what_it_says(tmp_path: Path, what: str, expected: list[str],
                                            compress: bool) -> None:  # fmt: skip
    layout = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci",
                                     images.BUSYBOX_REF, gzip=compress)  # fmt: skip
    assert _mismatches(layout) == []  # control
    images.tamper(layout, what)
    layer = images.MEDIA_LAYER_GZIP if compress else images.MEDIA_LAYER
    assert _mismatches(layout) == [e.format(layer=layer) for e in expected]
    if what == "diff-id":
        _, manifest, config = _oci_state(layout)
        top = (layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"][7:]).read_bytes()
        top = gzip.decompress(top) if compress else top
        assert config["rootfs"]["diff_ids"][-1] != _sha(top)
        assert config["rootfs"]["diff_ids"][:-1] == [
            _sha(gzip.decompress(b) if compress else b)
            for b in ((layout / "blobs" / "sha256" / d["digest"][7:]).read_bytes()
                      for d in manifest["layers"][:-1])
        ]  # fmt: skip
    if what == "layer-digest" and not compress:
        # Still a valid tar of the same members: only the digest tells.
        _members((layout / "blobs" / "sha256" / _oci_state(layout)[1]["layers"][-1]["digest"][7:])
                 .read_bytes())  # fmt: skip


@pytest.mark.parametrize("what", ["layer-digest", "config-digest", "diff-id", "missing-layer",
                                  "truncated-layer"])  # fmt: skip
def test_tamper_of_a_docker_archive(tmp_path: Path, what: str) -> None:
    archive = images.write_docker_archive(images.busybox_test_image(), tmp_path / "a.tar",
                                          images.BUSYBOX_REF)  # fmt: skip
    images.tamper(archive, what)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    files = _files(archive.read_bytes())
    [manifest] = json.loads(files["manifest.json"])
    top = manifest["Layers"][-1]
    if what == "missing-layer":
        assert top not in names
        return
    config = files[manifest["Config"]]
    name_matches = manifest["Config"] == _sha(config)[7:] + ".json"
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    layers_match = [_sha(files[p]) for p in manifest["Layers"]] == diff_ids
    assert (name_matches, layers_match) == {
        "layer-digest": (True, False),
        "config-digest": (False, True),
        "diff-id": (True, False),
        "truncated-layer": (True, False),
    }[what]


def test_unknown_kinds_are_refused(tmp_path: Path) -> None:
    layout = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", "x:y")
    with pytest.raises(ValueError, match="unknown tamper kind"):
        images.tamper(layout, "nonsense")
    with pytest.raises(ValueError, match="unknown hostile image kind"):
        images.hostile_image("nonsense", aim="/tmp/canary")
    with pytest.raises(ValueError, match="unknown layer entry kind"):
        images.LayerEntry("x", "socket")


HOSTILE_TOPS = {
    "dotdot": [("../../escape", tarfile.REGTYPE, "")],
    "absolute": [("/tmp/canary/abs/path", tarfile.REGTYPE, "")],
    "device": [("dev", tarfile.DIRTYPE, ""), ("dev/evil", tarfile.CHRTYPE, "")],
    "block": [("dev", tarfile.DIRTYPE, ""), ("dev/disk", tarfile.BLKTYPE, "")],
    "hardlink-out": [("passwd-link", tarfile.LNKTYPE, "../../etc/passwd")],
    "hardlink-missing": [("early", tarfile.LNKTYPE, "not/yet/there")],
    "hardlink-through": [
        ("etc3", tarfile.SYMTYPE, "/tmp/canary"),
        ("x", tarfile.LNKTYPE, "etc3/passwd"),
    ],
    "symlink-through": [
        ("etc2", tarfile.SYMTYPE, "/tmp/canary"),
        ("etc2/pwned", tarfile.REGTYPE, ""),
    ],
    "symlink-parent": [("d", tarfile.SYMTYPE, "../../.."), ("d/x", tarfile.REGTYPE, "")],
    "whiteout-dotdot": [("etc", tarfile.DIRTYPE, ""), ("etc/.wh...", tarfile.REGTYPE, "")],
}


@pytest.mark.parametrize("kind", images.HOSTILE_KINDS)
def test_hostile_images_carry_the_attack_verbatim(kind: str) -> None:
    """Verbatim but for where the escapes point: the aim (a canary), never the host's /etc."""
    image = images.hostile_image(kind, aim="/tmp/canary")
    assert image.layers[:3] == images.busybox_test_image().layers
    members = _members(images.layer_tar(image.layers[-1], 0))
    # tarfile keeps the name as written (a directory's trailing "/" is dropped on reading).
    assert [(m.name, m.type, m.linkname) for m in members] == HOSTILE_TOPS[kind]
    if kind == "device":
        assert (members[1].devmajor, members[1].devminor) == (1, 1)


def test_hostile_images_can_aim_at_a_canary() -> None:
    through = images.hostile_image("symlink-through", aim="/tmp/canary").layers[-1]
    assert [(e.path, e.target) for e in through] == [("etc2", "/tmp/canary"), ("etc2/pwned", "")]
    absolute = images.hostile_image("absolute", aim="/tmp/canary").layers[-1]
    assert [e.path for e in absolute] == ["/tmp/canary/abs/path"]
    # Kinds that do not aim at an absolute path do not depend on it.
    dotdot = images.hostile_image("dotdot", aim="/x").layers
    assert dotdot == images.hostile_image("dotdot", aim="/y").layers
    with pytest.raises(ValueError, match="absolute directory"):
        images.hostile_image("absolute", aim="relative")


def test_pack_oci_layout_holds_the_layout(tmp_path: Path) -> None:
    layout = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", "a:b")
    packed = images.pack_oci_layout(layout, tmp_path / "oci.tar")
    assert _files(packed.read_bytes()) == _all_files(layout)
