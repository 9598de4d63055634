"""The engine's overlay2 store, judged on the disk and in the kernel's mount table: docker's
layout (image/overlay2 with its imagedb, layerdb and repositories.json; overlay2/<cache-id> with
diff, link and lower; l/ short names), the init and rw layers of a container mounted with those
short names, and what overlayfs promises (filesystems/overlayfs.rst): files of the lower layers
are the same inodes on the same filesystem, a write copies the file up into the upper dir only,
whiteouts and opaque directories hide what the layers below hold, the upper layer wins.

The images are the judge's own (bulkhead.images): their ids, diff ids and chain ids are
computed here from the writer, not taken from the engine.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from bulkhead import images
from conformance._engine import BUSYBOX, HTTPD, Engine, idle, mounts_under, sh, sha256_hex

pytest_plugins = ("conformance._engine_fixtures",)
pytestmark = pytest.mark.engine

SHORT_NAME = re.compile(r"^[A-Z0-9]{26}$")  # docker's overlay2 link names
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# What docker's init layer holds (daemon/initlayer and overlay2's -init): empty files the
# engine bind-mounts over, mount points, and the marker /.dockerenv.
INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv", "dev/console")
INIT_DIRS = ("dev/pts", "dev/shm", "proc", "sys")


def hex_of(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    assert algorithm == "sha256" and HEX64.match(value), f"not a sha256 digest: {digest!r}"
    return value


def read(path: Path) -> str:
    assert path.exists(), f"{path} is missing"
    return path.read_text()


class Store:
    """The layer store as the disk shows it, for one image."""

    def __init__(self, engine: Engine, chain: list[str]) -> None:
        self.engine = engine
        self.chain = chain
        layerdb = engine.image_db / "layerdb" / "sha256"
        self.cache_ids = [read(layerdb / hex_of(c) / "cache-id").strip() for c in chain]

    def diff(self, index: int) -> Path:
        return self.engine.overlay2 / self.cache_ids[index] / "diff"

    def link(self, cache_id: str) -> str:
        return read(self.engine.overlay2 / cache_id / "link").strip()


def stored_config(engine: Engine, spec: images.ImageSpec, ref: str) -> dict[str, object]:
    """The image config the engine keeps for ``ref``, checked against the judge's own id."""
    expected = images.image_id(spec)
    repos = json.loads(read(engine.image_db / "repositories.json"))
    name, _ = images.split_ref(ref)
    assert repos["Repositories"][name][ref] == expected, f"repositories.json: {repos}"
    blob = engine.image_db / "imagedb" / "content" / "sha256" / hex_of(expected)
    assert sha256_hex(blob) == hex_of(expected), f"{blob}: its content is not its name's digest"
    config = json.loads(blob.read_bytes())
    assert isinstance(config, dict)
    return config


def image_store(engine: Engine, spec: images.ImageSpec, ref: str) -> Store:
    config = stored_config(engine, spec, ref)
    diff_ids = config["rootfs"]["diff_ids"]  # type: ignore[index]
    assert len(diff_ids) == len(spec.layers)
    return Store(engine, images.chain_ids(list(diff_ids)))


def test_the_image_store_is_laid_out_as_dockers(engine: Engine) -> None:
    busybox = images.busybox_test_image()
    config = stored_config(engine, busybox, BUSYBOX)
    diff_ids = list(config["rootfs"]["diff_ids"])  # type: ignore[index]
    chain = images.chain_ids(diff_ids)
    store = Store(engine, chain)
    layerdb = engine.image_db / "layerdb" / "sha256"
    links: list[str] = []
    for i, (chain_id, diff_id) in enumerate(zip(chain, diff_ids, strict=True)):
        entry = layerdb / hex_of(chain_id)
        assert read(entry / "diff").strip() == diff_id, f"layerdb {entry.name}: diff"
        if i == 0:
            assert not (entry / "parent").exists(), "the base layer has a parent"
        else:
            assert read(entry / "parent").strip() == chain[i - 1], f"layerdb {entry.name}: parent"
        assert read(entry / "size").strip().isdigit(), f"layerdb {entry.name}: size"
        cache_id = store.cache_ids[i]
        layer = engine.overlay2 / cache_id
        assert HEX64.match(cache_id) and (layer / "diff").is_dir(), f"overlay2/{cache_id}"
        link = store.link(cache_id)
        assert SHORT_NAME.match(link), f"overlay2/{cache_id}/link: {link!r}"
        assert os.readlink(engine.overlay2 / "l" / link) == f"../{cache_id}/diff"
        # lower: the l/ names of every layer below, nearest first; none for the base layer.
        if i == 0:
            assert not (layer / "lower").exists(), "the base layer has a lower file"
        else:
            assert read(layer / "lower").strip() == ":".join(f"l/{n}" for n in reversed(links))
        links.append(link)

    # The layers' content as the writer made it: busybox from the host, hard links kept.
    base = store.diff(0)
    assert sha256_hex(base / "bin" / "busybox") == sha256_hex(Path("/bin/busybox"))
    for applet in images.HARDLINKED_APPLETS:
        assert (base / "bin" / applet).stat().st_ino == (base / "bin" / "busybox").stat().st_ino
    assert os.readlink(base / "usr" / "bin" / "env") == "/bin/env"  # an absolute symlink, kept
    doomed = images.DOOMED_PATH.lstrip("/")
    opaque = images.OPAQUE_DIR.lstrip("/")
    assert (store.diff(1) / doomed).is_file()
    assert sorted(os.listdir(store.diff(1) / opaque)) == sorted(images.OPAQUE_BEFORE)
    # overlayfs's own forms (filesystems/overlayfs.rst): a whiteout is a 0:0 character device,
    # an opaque directory carries trusted.overlay.opaque=y; no .wh. names are left.
    whiteout = os.lstat(store.diff(2) / doomed)
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0, f"{doomed}: {whiteout}"
    assert os.getxattr(store.diff(2) / opaque, "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(store.diff(2) / opaque)) == sorted(images.OPAQUE_AFTER)
    for i in range(len(chain)):
        marks = [str(p) for p in store.diff(i).rglob(".wh.*")]
        assert not marks, f"whiteout names left in layer {i}: {marks}"

    # image inspect says the same (docker's shape).
    shown = engine.image_inspect(BUSYBOX)
    assert shown["Id"] == images.image_id(busybox) and shown["RepoTags"] == [BUSYBOX], shown
    assert shown["RootFS"]["Layers"] == diff_ids, shown["RootFS"]

    # The httpd image is busybox's layers plus one: the same chain ids, the same layer dirs.
    httpd = image_store(engine, images.httpd_test_image(), HTTPD)
    assert httpd.chain[:-1] == chain and httpd.cache_ids[:-1] == store.cache_ids
    assert (httpd.diff(len(chain)) / "www" / "index.html").read_bytes() == images.HTTPD_INDEX


def test_a_container_runs_on_init_and_rw_layers_mounted_by_short_names(engine: Engine) -> None:
    store = image_store(engine, images.busybox_test_image(), BUSYBOX)
    info = idle(engine, "--network", "none")
    graph = info.graph
    rw = info.merged.parent
    assert rw.parent == engine.overlay2 and HEX64.match(rw.name), f"MergedDir {info.merged}"
    assert rw.name != info.id, "the rw layer is named by the container id (docker: a random id)"
    init = engine.overlay2 / f"{rw.name}-init"
    assert graph["UpperDir"] == str(rw / "diff") and graph["WorkDir"] == str(rw / "work")
    rw_link, init_link = store.link(rw.name), store.link(init.name)
    for name, cache_id in ((rw_link, rw.name), (init_link, init.name)):
        assert SHORT_NAME.match(name), f"{cache_id}/link: {name!r}"
        assert os.readlink(engine.overlay2 / "l" / name) == f"../{cache_id}/diff"
    image_links = [f"l/{store.link(c)}" for c in reversed(store.cache_ids)]
    assert read(init / "lower").strip() == ":".join(image_links)
    lower = read(rw / "lower").strip()
    assert lower == ":".join([f"l/{init_link}", *image_links]), f"{rw}/lower: {lower}"
    image_diffs = [str(store.diff(i)) for i in reversed(range(len(store.chain)))]
    assert graph["LowerDir"] == ":".join([str(init / "diff"), *image_diffs])
    for path in INIT_FILES:
        assert (init / "diff" / path).exists(), f"the init layer has no {path}"
    for path in INIT_DIRS:
        assert (init / "diff" / path).is_dir(), f"the init layer has no {path}/"

    # The kernel's word: the host's mount at MergedDir is an overlay of exactly those short
    # names, with upper and work dirs given relative to overlay2/ as docker does (mount data
    # is one page; absolute paths of many layers do not fit).
    mounts = [m for m in mounts_under(rw) if m.point == str(info.merged)]
    assert len(mounts) == 1 and mounts[0].fstype == "overlay", f"mounts at {info.merged}: {mounts}"
    options = mounts[0].super_options
    assert f"lowerdir={lower}" in options, f"overlay options: {sorted(options)}"
    assert f"upperdir={rw.name}/diff" in options and f"workdir={rw.name}/work" in options, (
        f"overlay options: {sorted(options)}"
    )
    # ... and it is the container's root: "/" in the mount table of its init.
    own = Path(f"/proc/{info.pid}/mountinfo").read_text().splitlines()
    root = [line for line in own if line.split()[4] == "/"]
    assert root and f"lowerdir={lower}" in root[-1], (
        f"the container's / is not that overlay: {root}"
    )

    engine("rm", "-f", info.id)
    assert not mounts_under(rw), f"{info.merged} is still mounted after rm"
    left = [p for p in (rw, init) if p.exists()]
    left += [engine.overlay2 / "l" / n for n in (rw_link, init_link)
             if os.path.lexists(engine.overlay2 / "l" / n)]  # fmt: skip
    assert not left, f"rm left the container's layers: {left}"
    # The control: the image's layers, which the container only read, stay.
    assert all(store.diff(i).is_dir() for i in range(len(store.chain)))


def test_a_write_copies_up_into_the_upper_dir_only(engine: Engine) -> None:
    store = image_store(engine, images.busybox_test_image(), BUSYBOX)
    base = store.diff(0)
    original = (base / "etc" / "passwd").read_bytes()
    info = idle(engine, "--network", "none")
    upper, merged = info.upper, info.merged
    # Before the write: the file is the lower layer's, nothing of it in the upper dir.
    assert not (upper / "etc" / "passwd").exists(), "etc/passwd is in the upper dir unwritten"
    assert (merged / "etc" / "passwd").read_bytes() == original
    assert (merged / "etc" / "group").exists()

    done = engine("exec", info.id, *sh("echo added >>/etc/passwd; echo new >/fresh; rm /etc/group"))
    assert done.returncode == 0, done.stderr
    written = original + b"added\n"
    assert (upper / "etc" / "passwd").read_bytes() == written, "the copy-up is not in diff/"
    assert (merged / "etc" / "passwd").read_bytes() == written, "merged/ does not show the write"
    assert (upper / "fresh").read_bytes() == b"new\n" and (merged / "fresh").exists()
    # A file deleted in the container: a whiteout in diff/, gone from merged/.
    whiteout = os.lstat(upper / "etc" / "group")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0, f"etc/group: {whiteout}"
    assert not (merged / "etc" / "group").exists()
    # The lower layers are untouched: each holds what it held before.
    assert (base / "etc" / "passwd").read_bytes() == original
    assert (base / "etc" / "group").is_file()
    for i in range(len(store.chain)):
        assert not (store.diff(i) / "fresh").exists(), f"layer {i} got the container's file"
    seen = engine("exec", info.id, "cat", "/etc/passwd")
    assert seen.stdout.encode() == written


def test_whiteouts_and_opaque_dirs_hide_the_layers_below(engine: Engine) -> None:
    store = image_store(engine, images.busybox_test_image(), BUSYBOX)
    doomed = images.DOOMED_PATH.lstrip("/")
    opaque = images.OPAQUE_DIR.lstrip("/")
    # The control: the layer below holds what must be hidden, so a listing would show it.
    assert (store.diff(1) / doomed).is_file()
    assert sorted(os.listdir(store.diff(1) / opaque)) == sorted(images.OPAQUE_BEFORE)
    script = (
        f"ls -a {os.path.dirname(images.DOOMED_PATH)}; echo @@; ls -a {images.OPAQUE_DIR}; "
        f"echo @@; cat {images.OPAQUE_DIR}/c"
    )
    call = engine("run", "--rm", "--network", "none", BUSYBOX, *sh(script))
    etc, listed, c = call.stdout.split("@@\n")
    assert os.path.basename(doomed) not in etc.split(), f"{images.DOOMED_PATH} is visible"
    assert "passwd" in etc.split(), f"the listing of /etc shows nothing: {etc!r}"
    assert sorted(set(listed.split()) - {".", ".."}) == sorted(images.OPAQUE_AFTER)
    assert c.encode() == (store.diff(2) / opaque / "c").read_bytes()
    # Layer order, from the entrypoint layer: its scripts ran, in name order, before the command.
    messages = [line for line in call.stderr.splitlines() if "docker-entrypoint.d" in line]
    assert messages == list(images.ENTRYPOINT_MESSAGES), call.stderr


def test_the_root_is_the_backing_filesystem_and_its_inodes(engine: Engine) -> None:
    store = image_store(engine, images.busybox_test_image(), BUSYBOX)
    script = "stat -f -c '%b %c %S' /; stat -c '%i' /bin/busybox /bin/sh /etc/passwd"
    call = engine("run", "--rm", "--network", "none", BUSYBOX, *sh(script))
    lines = call.stdout.split("\n")
    blocks, files, size = (int(v) for v in lines[0].split())
    # overlayfs reports the upper filesystem's statfs (filesystems/overlayfs.rst); the upper
    # dir lives under the engine's root: the container sees that disk, not a copy elsewhere.
    backing = os.statvfs(engine.root)
    assert (blocks, files, size) == (backing.f_blocks, backing.f_files, backing.f_frsize), (
        f"statfs inside: {lines[0]}; the root's filesystem: {backing}"
    )
    # A file not written is the lower layer's own inode (same filesystem: st_ino passes
    # through), and the hard link /bin/sh is that inode too: nothing was copied.
    base = store.diff(0)
    expected = [
        (base / "bin" / "busybox").stat().st_ino,
        (base / "bin" / "busybox").stat().st_ino,
        (base / "etc" / "passwd").stat().st_ino,
    ]
    assert [int(v) for v in lines[1:4]] == expected, call.stdout
