"""The overlay2 layer store (reference_runtime/engine/overlay2.py) with real overlay mounts under
the test's tmp dir: docker's layout, the relative short names in the mount data, and what the
kernel's overlayfs makes of the loaded busybox test image (whiteouts, opaque dirs, copy-up)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _imagesupport import mounts_below, scratch_layout, small_tmpfs, tree

from bulkhead import images
from bulkhead.diskfull import fill
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.images.store import ImageStore
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.overlay2 import MAX_LOWERS, PAGE_SIZE, Overlay2, is_mounted

SHORT = re.compile(r"^[A-Z0-9]{26}$")


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    with scratch_layout(tmp_path) as layout:
        yield layout


@pytest.fixture
def overlay(layout: Layout) -> Overlay2:
    return Overlay2(layout)


def overlay_options(merged: Path) -> str:
    """The super options mountinfo shows for the overlay at ``merged``."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(merged):
                sep = fields.index("-")
                assert fields[sep + 1] == "overlay"
                return fields[sep + 3]
    raise AssertionError(f"{merged} is not mounted")


def test_layers_are_laid_out_as_docker_lays_them(overlay: Overlay2, layout: Layout) -> None:
    base = overlay.create_layer(None)
    child = overlay.create_layer(base)
    top = overlay.create_layer(child)
    for cache_id in (base, child, top):
        layer = layout.overlay2 / cache_id
        assert re.match(r"^[0-9a-f]{64}$", cache_id)
        short = (layer / "link").read_text()
        assert SHORT.match(short)
        assert os.readlink(layout.links / short) == f"../{cache_id}/diff"
        assert (layer / "diff").is_dir()
        assert stat.S_IMODE(os.lstat(layer).st_mode) == 0o701
    link = {c: (layout.overlay2 / c / "link").read_text() for c in (base, child, top)}
    # A base layer has neither lower nor work (docker's overlay2 Create).
    assert not (layout.overlay2 / base / "lower").exists()
    assert not (layout.overlay2 / base / "work").exists()
    assert (layout.overlay2 / child / "lower").read_text() == f"l/{link[base]}"
    assert (layout.overlay2 / top / "lower").read_text() == f"l/{link[child]}:l/{link[base]}"
    assert (layout.overlay2 / top / "work").is_dir()
    assert overlay.lower_dirs(top) == [overlay.diff_dir(child), overlay.diff_dir(base)]
    assert overlay.lower_dirs(base) == []
    overlay.remove_layer(top)
    assert not (layout.overlay2 / top).exists()
    assert not os.path.lexists(layout.links / link[top])
    overlay.remove_layer(top)  # gone already: fine


def test_container_layers_get_an_init_layer_as_docker_s(overlay: Overlay2, layout: Layout) -> None:
    base = overlay.create_layer(None)
    c = overlay.create_container_layers(base)
    assert c.init_id == c.rw_id + "-init"
    assert c.merged == layout.overlay2 / c.rw_id / "merged" and c.merged.is_dir()
    init = overlay.diff_dir(c.init_id)
    for f in (".dockerenv", "dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
        st = os.lstat(init / f)
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0, f
    for d in ("dev/pts", "dev/shm", "proc", "sys"):
        assert (init / d).is_dir(), d
    assert os.readlink(init / "etc" / "mtab") == "/proc/mounts"
    init_link = (layout.overlay2 / c.init_id / "link").read_text()
    base_link = (layout.overlay2 / base / "link").read_text()
    assert c.lowerdir == f"l/{init_link}:l/{base_link}"
    assert (layout.overlay2 / c.rw_id / "lower").read_text() == c.lowerdir
    assert overlay.graph_driver_data(c.rw_id) == {
        "LowerDir": f"{init}:{overlay.diff_dir(base)}",
        "MergedDir": str(c.merged),
        "UpperDir": str(overlay.diff_dir(c.rw_id)),
        "WorkDir": str(layout.overlay2 / c.rw_id / "work"),
    }
    overlay.remove_container_layers(c.rw_id)
    assert sorted(os.listdir(layout.overlay2)) == sorted(["l", base])
    assert os.listdir(layout.links) == [base_link]


def test_the_busybox_image_through_a_real_overlay(layout: Layout, overlay: Overlay2,
                                                  tmp_path: Path) -> None:  # fmt: skip
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", images.BUSYBOX_REF)
    [image] = ImageStore(layout).load(oci)
    c = overlay.create_container_layers(image.top_layer)
    cwd = os.getcwd()
    merged = overlay.mount(c.rw_id)
    try:
        assert os.getcwd() == cwd  # the mount's chdir happened in a child
        assert is_mounted(merged)
        # mountinfo shows the mount data as given: short names relative to overlay2/.
        options = overlay_options(merged).split(",")
        assert f"lowerdir={c.lowerdir}" in options
        assert f"upperdir={c.rw_id}/diff" in options and f"workdir={c.rw_id}/work" in options
        assert overlay.mount(c.rw_id) == merged  # mounted already: nothing more
        assert len(mounts_below(layout.root)) == 1

        lowers = overlay.lower_dirs(image.top_layer)  # layer 2, layer 1 below layer 3
        layer3, layer2 = overlay.diff_dir(image.top_layer), lowers[0]
        # Whiteout: the file is in layer 2, a 0:0 char device in layer 3, absent in merged.
        assert (layer2 / "etc" / "doomed").is_file()
        assert stat.S_ISCHR(os.lstat(layer3 / "etc" / "doomed").st_mode)
        assert not os.path.lexists(merged / "etc" / "doomed")
        assert (merged / "etc" / "passwd").is_file()  # control: its sibling is there
        # Opaque: layer 2's a and b are hidden, layer 3's c shows.
        assert sorted(os.listdir(layer2 / "opt" / "lower")) == ["a", "b"]
        assert sorted(os.listdir(merged / "opt" / "lower")) == ["c"]
        assert (merged / ".dockerenv").is_file()  # the init layer is in the stack

        # The entrypoint runs the entrypoint.d scripts in order, then the command.
        ran = subprocess.run(["chroot", str(merged), "/docker-entrypoint.sh", "echo", "hi"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert ran.stdout == "hi\n"
        assert ran.stderr.splitlines() == list(images.ENTRYPOINT_MESSAGES)

        upper = overlay.diff_dir(c.rw_id)
        base = lowers[-1]
        before_lowers = {p: tree(p) for p in [layer3, *lowers]}
        # Copy-up: the change is in the upper diff only.
        (merged / "etc" / "passwd").write_text("changed\n")
        assert (upper / "etc" / "passwd").read_text() == "changed\n"
        assert (base / "etc" / "passwd").read_text().startswith("root:x:0:0:")
        (merged / "new").write_text("new\n")
        assert (upper / "new").read_text() == "new\n"
        # Deleting a lower file makes a whiteout in the upper dir; a removed and re-made lower
        # directory comes back opaque (overlayfs.rst, "whiteouts and opaque directories").
        os.unlink(merged / "bin" / "ls")
        st = os.lstat(upper / "bin" / "ls")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        subprocess.run(["rm", "-r", str(merged / "opt" / "lower")], check=True)
        (merged / "opt" / "lower").mkdir()
        assert os.getxattr(upper / "opt" / "lower", "trusted.overlay.opaque") == b"y"
        assert os.listdir(merged / "opt" / "lower") == []
        assert {p: tree(p) for p in [layer3, *lowers]} == before_lowers
    finally:
        overlay.unmount(c.rw_id)
    assert not is_mounted(merged)
    overlay.unmount(c.rw_id)  # not mounted: tolerated
    overlay.remove_container_layers(c.rw_id)
    assert not (layout.overlay2 / c.rw_id).exists()
    assert not (layout.overlay2 / c.init_id).exists()
    assert len(os.listdir(layout.links)) == 3  # the image's layers stay


def test_relative_short_names_fit_a_deep_stack_in_one_page(overlay: Overlay2,
                                                           layout: Layout) -> None:  # fmt: skip
    parent = None
    for i in range(MAX_LOWERS - 1):
        parent = overlay.create_layer(parent)
        (overlay.diff_dir(parent) / f"f{i}").write_text(str(i))
    assert parent is not None
    c = overlay.create_container_layers(parent)
    data = overlay.mount_data(c.rw_id)
    absolute = ":".join(str(p) for p in overlay.lower_dirs(c.rw_id))
    assert len(data) < PAGE_SIZE < len(absolute)  # the control: absolute paths do not fit
    merged = overlay.mount(c.rw_id)
    try:
        assert (merged / "f0").read_text() == "0"
        assert (merged / f"f{MAX_LOWERS - 2}").read_text() == str(MAX_LOWERS - 2)
    finally:
        overlay.remove_container_layers(c.rw_id)
    # One image layer more and the container's upper layer would have one lower too many: it
    # is refused when it is made, and the init layer made before it goes again.
    deeper = overlay.create_layer(parent)
    before = tree(layout.root)
    with pytest.raises(EngineError, match=f"more than {MAX_LOWERS} layers"):
        overlay.create_container_layers(deeper)
    assert tree(layout.root) == before


def test_a_mounted_layer_is_not_removed(overlay: Overlay2, layout: Layout) -> None:
    c = overlay.create_container_layers(overlay.create_layer(None))
    merged = overlay.mount(c.rw_id)
    (merged / "kept").write_text("x")
    with pytest.raises(EngineError, match="still mounted"):
        overlay.remove_layer(c.rw_id)
    assert (overlay.diff_dir(c.rw_id) / "kept").exists()
    overlay.remove_container_layers(c.rw_id)  # the control: unmounts first, then removes
    assert not (layout.overlay2 / c.rw_id).exists()


def test_a_failed_mount_is_an_engine_error(overlay: Overlay2, layout: Layout) -> None:
    c = overlay.create_container_layers(overlay.create_layer(None))
    (layout.overlay2 / c.rw_id / "work").rmdir()
    with pytest.raises(EngineError, match=r"failed to mount the overlay of \w+: mount .*: No such"):
        overlay.mount(c.rw_id)
    assert not is_mounted(c.merged)
    (layout.overlay2 / c.rw_id / "work").mkdir()
    overlay.mount(c.rw_id)  # the control
    overlay.remove_container_layers(c.rw_id)


def test_bad_ids_are_refused_before_any_path_is_made(overlay: Overlay2) -> None:
    for bad in ("../etc", "x", "A" * 64, "0" * 63):
        with pytest.raises(EngineError, match="not a layer id"):
            overlay.diff_dir(bad)


def test_a_full_disk_leaves_no_half_made_container_layers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "2m") as small, scratch_layout(small) as layout:
        overlay = Overlay2(layout)
        base = overlay.create_layer(None)
        filler = fill(small)
        before = tree(layout.root)
        with pytest.raises(EngineError, match="failed to create container layers: no space left"):
            overlay.create_container_layers(base)
        assert tree(layout.root) == before
        filler.unlink()
        c = overlay.create_container_layers(base)  # the control
        overlay.remove_container_layers(c.rw_id)
