"""The image store (reference_runtime/engine/images/): loading OCI layouts (dir, tar, gzip
layers, nested indexes) and docker-save tarballs into docker's layout, sharing layers by chain
id, get/list/inspect/remove, and every bad input - each tamper, each hostile layer, a full disk,
a failure at any step - refused in one line with nothing half-made left (the whole root is
walked before and after)."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _imagesupport import scratch_layout, small_tmpfs, tree

from bulkhead import images
from bulkhead.diskfull import fill
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.images import store as store_module
from reference_runtime.engine.images.layertar import Readable
from reference_runtime.engine.images.layertar import extract_layer as real_extract
from reference_runtime.engine.images.store import Image, ImageStore
from reference_runtime.engine.layout import Layout

BUSYBOX, HTTPD = images.BUSYBOX_REF, images.HTTPD_REF
ONE_LINE = re.compile(r"^failed to [^\n]+$")


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    with scratch_layout(tmp_path) as layout:
        yield layout


@pytest.fixture
def store(layout: Layout) -> ImageStore:
    return ImageStore(layout)


def no_users(image_id: str) -> list[str]:
    return []


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_registered(layout: Layout, image: Image, spec: images.ImageSpec) -> None:
    """docker's layout for ``image``: config, layerdb entries, layer dirs and l/ links."""
    db = layout.image_db
    config_blob = (db / "imagedb" / "content" / "sha256" / image.id[7:]).read_bytes()
    assert sha(config_blob) == image.id == images.image_id(spec)
    diff_ids = json.loads(config_blob)["rootfs"]["diff_ids"]
    assert list(image.chain_ids) == images.chain_ids(diff_ids)
    parent_link = None
    for i, (chain, diff_id) in enumerate(zip(image.chain_ids, diff_ids, strict=True)):
        entry = db / "layerdb" / "sha256" / chain[7:]
        assert (entry / "diff").read_text() == diff_id
        if i:
            assert (entry / "parent").read_text() == image.chain_ids[i - 1]
        else:
            assert not (entry / "parent").exists()
        cache_id = (entry / "cache-id").read_text()
        layer = layout.overlay2 / cache_id
        link = (layer / "link").read_text()
        assert os.readlink(layout.links / link) == f"../{cache_id}/diff"
        if parent_link is None:
            assert not (layer / "lower").exists()
        else:
            assert (layer / "lower").read_text().split(":")[0] == f"l/{parent_link}"
        parent_link = link
        files = sum(e.data.__len__() for e in spec.layers[i] if e.kind == "file")
        assert int((entry / "size").read_text()) == files
    assert image.top_layer == (db / "layerdb" / "sha256" / image.chain_ids[-1][7:] /
                               "cache-id").read_text()  # fmt: skip
    repos = json.loads((db / "repositories.json").read_bytes())["Repositories"]
    for ref in image.repo_tags:
        assert repos[images.split_ref(ref)[0]][ref] == image.id


def diff(store: ImageStore, image: Image, index: int) -> Path:
    cache_id = (store.layerdb / image.chain_ids[index][7:] / "cache-id").read_text()
    return store.overlay.diff_dir(cache_id)


@pytest.mark.parametrize("form", ["oci", "oci-gzip", "oci-tar", "docker", "docker-gzip"])
def test_each_format_loads_into_docker_s_layout(store: ImageStore, layout: Layout,
                                                tmp_path: Path, form: str) -> None:  # fmt: skip
    spec = images.busybox_test_image()
    if form.startswith("oci"):
        path = images.write_oci_layout(spec, tmp_path / "oci", BUSYBOX, gzip=form == "oci-gzip")
        if form == "oci-tar":
            path = images.pack_oci_layout(path, tmp_path / "oci.tar")
    else:
        path = images.write_docker_archive(spec, tmp_path / "a.tar", BUSYBOX,
                                           gzip=form == "docker-gzip")  # fmt: skip
    [image] = store.load(path)
    assert image.repo_tags == (BUSYBOX,)
    assert image.config["config"]["Entrypoint"] == ["/docker-entrypoint.sh"]
    check_registered(layout, image, spec)
    base, second, third = (diff(store, image, i) for i in range(3))
    assert (base / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert os.lstat(base / "bin" / "sh").st_ino == os.lstat(base / "bin" / "busybox").st_ino
    assert stat.S_IMODE(os.lstat(base / "tmp").st_mode) == 0o1777
    assert (second / "etc" / "doomed").is_file()
    doomed = os.lstat(third / "etc" / "doomed")
    assert stat.S_ISCHR(doomed.st_mode) and doomed.st_rdev == 0
    assert os.getxattr(third / "opt" / "lower", "trusted.overlay.opaque") == b"y"
    assert store.get(BUSYBOX) == image
    assert [i.id for i in store.list()] == [image.id]


def test_layers_are_shared_by_chain_id(store: ImageStore, layout: Layout, tmp_path: Path) -> None:
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", BUSYBOX)
    [busybox] = store.load(oci)
    dirs = set(os.listdir(layout.overlay2))
    images.write_oci_layout(images.httpd_test_image(), tmp_path / "oci", HTTPD, gzip=True)
    loaded = store.load(oci)  # the layout now holds both: busybox again, and httpd
    assert [i.repo_tags for i in loaded] == [(BUSYBOX,), (HTTPD,)]
    assert loaded[0] == busybox
    httpd = loaded[1]
    assert httpd.chain_ids[:3] == busybox.chain_ids
    # Only httpd's own top layer is new.
    assert len(set(os.listdir(layout.overlay2)) - dirs) == 1
    assert (diff(store, httpd, 3) / "www" / "index.html").read_bytes() == images.HTTPD_INDEX
    check_registered(layout, httpd, images.httpd_test_image())


def test_get_by_tag_name_and_ids(store: ImageStore, tmp_path: Path) -> None:
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", "bulkhead/bb")
    [image] = store.load(oci)
    assert image.repo_tags == ("bulkhead/bb:latest",)
    for ref in ("bulkhead/bb", "bulkhead/bb:latest", image.id, image.id[7:], image.id[7:19],
                image.id[:19]):  # fmt: skip
        assert store.get(ref).id == image.id, ref
    for ref in ("bulkhead/bb:other", "nope", image.id[7:18], "sha256:" + "0" * 64):
        with pytest.raises(EngineError, match=f"^failed to find image {re.escape(ref)}: no such"):
            store.get(ref)


def test_docker_hub_names_are_kept_in_their_familiar_form(
    store: ImageStore, tmp_path: Path
) -> None:
    archive = images.write_docker_archive(images.busybox_test_image(), tmp_path / "a.tar",
                                          "docker.io/library/bb:1")  # fmt: skip
    [image] = store.load(archive)
    assert image.repo_tags == ("bb:1",)
    for ref in ("bb:1", "docker.io/library/bb:1", "index.docker.io/library/bb:1"):
        assert store.get(ref).id == image.id


def test_inspect_is_docker_s_shape(store: ImageStore, tmp_path: Path) -> None:
    oci = images.write_oci_layout(images.httpd_test_image(), tmp_path / "oci", HTTPD)
    [image] = store.load(oci)
    doc = store.inspect(HTTPD)
    assert doc["Id"] == image.id and doc["RepoTags"] == [HTTPD]
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert doc["RootFS"] == {"Type": "layers", "Layers": image.config["rootfs"]["diff_ids"]}
    assert doc["Os"] == "linux" and doc["Created"] == images.CREATED
    data = doc["GraphDriver"]["Data"]
    assert doc["GraphDriver"]["Name"] == "overlay2"
    assert data["UpperDir"] == str(diff(store, image, 3))
    assert data["LowerDir"].split(":") == [str(diff(store, image, i)) for i in (2, 1, 0)]
    assert doc["Size"] == sum(len(e.data) for layer in images.httpd_test_image().layers
                              for e in layer if e.kind == "file")  # fmt: skip


def test_remove_keeps_shared_layers_and_refuses_an_image_in_use(
    store: ImageStore, layout: Layout, tmp_path: Path
) -> None:
    empty = tree(layout.root)
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", BUSYBOX)
    images.write_oci_layout(images.httpd_test_image(), oci, HTTPD)
    busybox, httpd = store.load(oci)
    with pytest.raises(EngineError, match=f"^failed to remove image {BUSYBOX}: in use by container "
                                          f"c1, c2$"):  # fmt: skip
        store.remove(BUSYBOX, in_use=lambda i: ["c1", "c2"] if i == busybox.id else [])
    assert store.get(BUSYBOX) == busybox
    # A second tag: removing one only untags.
    store.load(images.write_docker_archive(images.busybox_test_image(), tmp_path / "a.tar",
                                           "bulkhead/alias:1"))  # fmt: skip
    assert store.get(BUSYBOX).repo_tags == ("bulkhead/alias:1", BUSYBOX)
    assert store.remove("bulkhead/alias:1", in_use=no_users) == []
    assert store.get(BUSYBOX).repo_tags == (BUSYBOX,)
    # busybox's layers are httpd's too: only the image goes.
    dirs = set(os.listdir(layout.overlay2))
    assert store.remove(BUSYBOX, in_use=no_users) == [busybox.id]
    assert set(os.listdir(layout.overlay2)) == dirs
    with pytest.raises(EngineError, match="no such image"):
        store.get(BUSYBOX)
    removed = store.remove(httpd.id[7:19], in_use=no_users)
    assert removed == [httpd.id, *reversed(httpd.chain_ids)]
    assert store.list() == []
    after = tree(layout.root)
    # Nothing but the store's skeleton (and an empty repositories.json) stays.
    extra = set(after) - set(empty)
    skeleton = {"imagedb", "imagedb/content", "imagedb/content/sha256", "layerdb",
                "layerdb/sha256", "repositories.json"}  # fmt: skip
    assert extra == {f"image/overlay2/{p}" for p in skeleton}
    assert json.loads((layout.image_db / "repositories.json").read_bytes()) == {"Repositories": {}}


def test_an_oci_entry_with_only_a_tag_loads_untagged_or_under_a_given_name(
    store: ImageStore, tmp_path: Path
) -> None:
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", "x:latest")
    index = json.loads((oci / "index.json").read_bytes())
    del index["manifests"][0]["annotations"][images.ANNOTATION_CONTAINERD_NAME]
    (oci / "index.json").write_bytes(json.dumps(index).encode())
    [untagged] = store.load(oci)
    assert untagged.repo_tags == ()
    [named] = store.load(oci, name="bulkhead/named")
    assert named.id == untagged.id and named.repo_tags == ("bulkhead/named:latest",)


def test_a_nested_index_picks_this_machine_s_platform(store: ImageStore, tmp_path: Path) -> None:
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", BUSYBOX)
    index = json.loads((oci / "index.json").read_bytes())
    entry = index["manifests"][0]
    other = dict(entry, platform={"architecture": "s390x", "os": "linux"},
                 digest=sha(b"not there"))  # fmt: skip
    nested = {"schemaVersion": 2, "mediaType": images.MEDIA_INDEX, "manifests": [other, entry]}
    blob = json.dumps(nested).encode()
    (oci / "blobs" / "sha256" / sha(blob)[7:]).write_bytes(blob)
    index["manifests"] = [{"mediaType": images.MEDIA_INDEX, "digest": sha(blob), "size": len(blob),
                           "annotations": entry["annotations"]}]  # fmt: skip
    (oci / "index.json").write_bytes(json.dumps(index).encode())
    [image] = store.load(oci)
    assert image.id == images.image_id(images.busybox_test_image())
    assert image.repo_tags == (BUSYBOX,)


# -- bad input: a clear one-line error, and the root exactly as it was --------------------------


@pytest.fixture
def seeded(store: ImageStore, layout: Layout, tmp_path: Path) -> dict[str, Any]:
    """A store that already holds busybox (a refused load must not harm it)."""
    [image] = store.load(images.write_oci_layout(images.busybox_test_image(), tmp_path / "seed",
                                                 BUSYBOX))  # fmt: skip
    return {"image": image, "tree": tree(layout.root)}


def refused(store: ImageStore, layout: Layout, seeded: dict[str, Any], path: Path,
            match: str) -> str:  # fmt: skip
    with pytest.raises(EngineError) as caught:
        store.load(path)
    message = str(caught.value)
    assert ONE_LINE.match(message), message
    assert re.search(match, message), message
    assert tree(layout.root) == seeded["tree"]
    assert store.get(BUSYBOX) == seeded["image"]
    return message


def benign() -> images.ImageSpec:
    image = images.busybox_test_image()
    image.layers.append([images.LayerEntry("benign", "file", data=b"an ordinary file\n")])
    return image


BENIGN = "bulkhead/benign:test"


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "gzip"])
@pytest.mark.parametrize(("what", "match"), [
    ("layer-digest", r"layer sha256:[0-9a-f]{12}: digest mismatch \(got sha256:[0-9a-f]{12}\)$"),
    ("config-digest", r"config sha256:[0-9a-f]{12}: digest mismatch"),
    ("manifest-digest", r"manifest sha256:[0-9a-f]{12}: digest mismatch"),
    ("missing-layer", r"layer sha256:[0-9a-f]{64}: blob missing from the layout"),
    ("truncated-layer", r"size mismatch \(descriptor says \d+ bytes, blob has \d+\)"),
    ("diff-id", r"diff id mismatch \(the config says sha256:\w{12}, the layer is sha256:\w{12}\)"),
])  # fmt: skip
def test_each_tampered_oci_layout_is_refused(store: ImageStore, layout: Layout, tmp_path: Path,
                                             seeded: dict[str, Any], what: str, match: str,
                                             compress: bool) -> None:  # fmt: skip
    good = images.write_oci_layout(benign(), tmp_path / "good", BENIGN, gzip=compress)
    bad = images.write_oci_layout(benign(), tmp_path / "bad", BENIGN, gzip=compress)
    images.tamper(bad, what)
    message = refused(store, layout, seeded, bad, match)
    assert message.startswith(f"failed to load image {BENIGN}: ")
    assert store.load(good)[0].repo_tags == (BENIGN,)  # the control


@pytest.mark.parametrize(("what", "match"), [
    ("layer-digest", r"layer sha256:\w{12}: diff id mismatch"),
    ("config-digest", r"config sha256:\w{12}: digest mismatch \(got sha256:\w{12}\)"),
    ("diff-id", r"diff id mismatch"),
    ("missing-layer", r"layer \w+/layer.tar missing from the archive"),
    # Half of the tar still ends in its end-of-archive blocks: only the diff id tells.
    ("truncated-layer", r"diff id mismatch"),
])  # fmt: skip
def test_each_tampered_docker_archive_is_refused(store: ImageStore, layout: Layout,
                                                 tmp_path: Path, seeded: dict[str, Any],
                                                 what: str, match: str) -> None:  # fmt: skip
    good = images.write_docker_archive(benign(), tmp_path / "good.tar", BENIGN)
    bad = images.write_docker_archive(benign(), tmp_path / "bad.tar", BENIGN)
    images.tamper(bad, what)
    refused(store, layout, seeded, bad, match)
    assert store.load(good)[0].repo_tags == (BENIGN,)  # the control


def hostile(canary: Path) -> dict[str, str]:
    """The message for each hostile kind, aimed at ``canary`` instead of the host's /etc."""
    return {
        "dotdot": r"member \.\./\.\./escape escapes the layer",
        "absolute": rf"member {re.escape(str(canary))}/abs/path is an absolute path",
        "device": r"member dev/evil is a character device",
        "block": r"member dev/disk is a block device",
        "hardlink-out": r"hard link passwd-link -> \.\./\.\./etc/passwd escapes .*outside",
        "hardlink-missing": r"hard link early -> not/yet/there: not is not in the layer",
        "hardlink-through": r"hard link x -> etc3/passwd: etc3 is a symlink",
        "symlink-through": r"member etc2/pwned: etc2 is a symlink",
        "symlink-parent": r"member d/x: d is a symlink",
        "whiteout-dotdot": r"whiteout etc/\.wh\.\.\. names \.\.",
    }


@pytest.mark.parametrize("kind", images.HOSTILE_KINDS)
def test_each_hostile_layer_is_refused_and_nothing_escapes(store: ImageStore, layout: Layout,
                                                           tmp_path: Path, seeded: dict[str, Any],
                                                           kind: str) -> None:  # fmt: skip
    # The attacks aim at a canary of the test's own (a copy of /etc's passwd), so an extractor
    # that fails this test writes there, not on the host.
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "passwd").write_text("canary\n")
    aimed = images.hostile_image(kind, aim=str(canary))
    assert images.busybox_test_image().layers == aimed.layers[:-1]
    around = [tmp_path / "escape", layout.root / "x", layout.overlay2 / "x"]
    outside = set(os.listdir(tmp_path))
    path = images.write_oci_layout(aimed, tmp_path / kind, f"bulkhead/{kind}")
    message = refused(store, layout, seeded, path, hostile(canary)[kind])
    assert message.startswith(f"failed to load image bulkhead/{kind}:latest: layer sha256:")
    assert os.listdir(canary) == ["passwd"] and os.stat(canary / "passwd").st_nlink == 1
    assert not [p for p in around if os.path.lexists(p)]
    assert set(os.listdir(tmp_path)) == outside | {kind}
    store.load(images.write_oci_layout(benign(), tmp_path / "benign", BENIGN))  # the control


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    spec = benign()
    oci = images.write_oci_layout(spec, tmp_path / "oci", BENIGN)
    with small_tmpfs(tmp_path / "small", "8m") as small, scratch_layout(small) as layout:
        store = ImageStore(layout)
        filler = fill(small)
        before = tree(layout.root)
        with pytest.raises(EngineError) as caught:
            store.load(oci)
        assert re.match(rf"^failed to load image {BENIGN}: layer sha256:\w{{12}}: no space left "
                        rf"on device$", str(caught.value)), str(caught.value)  # fmt: skip
        assert tree(layout.root) == before
        filler.unlink()
        [image] = store.load(oci)  # the control
        check_registered(layout, image, spec)


@pytest.mark.parametrize("step", ["_write_layerdb", "_write_config", "repositories",
                                  "commit_layer", "interrupt"])  # fmt: skip
def test_a_failure_at_any_step_undoes_the_whole_load(store: ImageStore, layout: Layout,
                                                     tmp_path: Path, seeded: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     step: str) -> None:  # fmt: skip
    oci = images.write_oci_layout(images.httpd_test_image(), tmp_path / "oci", HTTPD)
    images.write_oci_layout(benign(), oci, BENIGN)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if step == "repositories":
        real = store_module._write_atomic

        def on_repositories(path: Path, data: bytes) -> None:
            if path.name == "repositories.json":
                failing()
            real(path, data)

        monkeypatch.setattr(store_module, "_write_atomic", on_repositories)
    elif step == "commit_layer":
        real_commit = store.overlay.commit_layer
        commits = []

        def second_commit_fails(staging: Path, parent: str | None) -> str:
            commits.append(staging)
            if len(commits) == 2:  # the first layer is in, the second fails
                failing()
            return real_commit(staging, parent)

        monkeypatch.setattr(store.overlay, "commit_layer", second_commit_fails)
    elif step == "interrupt":

        def interrupted(stream: Readable, diff_dir: Path) -> Any:
            real_extract(stream, diff_dir)
            raise KeyboardInterrupt

        monkeypatch.setattr(store_module, "extract_layer", interrupted)
    else:
        monkeypatch.setattr(ImageStore, step, failing)
    with pytest.raises((EngineError, KeyboardInterrupt)) as caught:
        store.load(oci)
    if step != "interrupt":
        assert str(caught.value).endswith(": no space left on device")
    assert tree(layout.root) == seeded["tree"]


def test_a_killed_load_s_staging_is_collected(store: ImageStore, layout: Layout,
                                              tmp_path: Path) -> None:  # fmt: skip
    staging = store.overlay.stage_layer()
    (staging / "diff" / "half").write_text("x")
    store.load(images.write_oci_layout(images.busybox_test_image(), tmp_path / "o", BUSYBOX))
    assert not staging.exists()


@pytest.mark.parametrize(("change", "match"), [
    (lambda m, c: m["layers"][0].update(mediaType="application/vnd.oci.image.layer.v1.tar+zstd"),
     r"unsupported media type 'application/vnd.oci.image.layer.v1.tar\+zstd'"),
    (lambda m, c: m["layers"][0].update(digest="sha512:" + "0" * 128),
     "unsupported or malformed digest"),
    (lambda m, c: m["layers"][0].update(digest="sha256:../../../../etc/passwd"),
     "unsupported or malformed digest"),
    (lambda m, c: c.update(os="windows"), "it is for 'windows', not linux"),
    (lambda m, c: c["rootfs"]["diff_ids"].pop(), "config lists 2 diff ids for 3 layers"),
])  # fmt: skip
def test_malformed_manifests_and_configs_are_refused(store: ImageStore, layout: Layout,
                                                     tmp_path: Path, seeded: dict[str, Any],
                                                     change: Any, match: str) -> None:  # fmt: skip
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", "bulkhead/m:1")
    index = json.loads((oci / "index.json").read_bytes())
    blobs = oci / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    change(manifest, config)
    config_blob = json.dumps(config).encode()
    (blobs / sha(config_blob)[7:]).write_bytes(config_blob)
    manifest["config"].update(digest=sha(config_blob), size=len(config_blob))
    manifest_blob = json.dumps(manifest).encode()
    (blobs / sha(manifest_blob)[7:]).write_bytes(manifest_blob)
    index["manifests"][0].update(digest=sha(manifest_blob), size=len(manifest_blob))
    (oci / "index.json").write_bytes(json.dumps(index).encode())
    refused(store, layout, seeded, oci, match)


def test_not_an_image_is_refused(store: ImageStore, layout: Layout, tmp_path: Path,
                                 seeded: dict[str, Any]) -> None:  # fmt: skip
    (tmp_path / "empty").mkdir()
    refused(store, layout, seeded, tmp_path / "empty", "not an OCI image layout")
    (tmp_path / "junk.tar").write_bytes(b"junk" * 1000)
    refused(store, layout, seeded, tmp_path / "junk.tar", "not a readable tar")
    refused(store, layout, seeded, tmp_path / "missing", "No such file")
    (tmp_path / "zeros.tar.gz").write_bytes(gzip.compress(b"\0" * 10240))
    refused(store, layout, seeded, tmp_path / "zeros.tar.gz", "not an OCI image layout")
