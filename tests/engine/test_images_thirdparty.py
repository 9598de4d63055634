"""Images written by other tools load, and read the same through our overlay as those tools read
them: umoci builds an image (init/new/unpack/repack, busybox added into the rootfs, a file deleted
in a second layer), skopeo converts our test image to a docker-save archive, another OCI layout
and an OCI archive. Each merged rootfs is compared, entry by entry, with umoci's own unpacking
of the same image (umoci applies whiteouts and opaque directories itself)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _imagesupport import scratch_layout, tree

from bulkhead import images
from reference_runtime.engine.images.store import Image, ImageStore
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.overlay2 import Overlay2

UMOCI = shutil.which("umoci")
SKOPEO = shutil.which("skopeo")
needs_umoci = pytest.mark.skipif(UMOCI is None, reason="umoci is not installed (Debian: umoci)")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (Debian: skopeo)")
# What the container's init layer adds above every image (overlay2.py), not the image's own.
INIT_PATHS = {".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc/hostname",
              "etc/hosts", "etc/resolv.conf", "etc/mtab", "proc", "sys"}  # fmt: skip

View = dict[str, tuple[int, int, int, str]]


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    with scratch_layout(tmp_path) as layout:
        yield layout


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def view(root: Path) -> View:
    """tree() without what differs by filesystem only (a directory's st_size) and without the
    init layer's entries."""
    out = {}
    for name, (mode, uid, size, what) in tree(root).items():
        if name in INIT_PATHS or name.startswith(("dev/", "proc/", "sys/")):
            continue
        out[name] = (mode, uid, 0 if stat.S_ISDIR(mode) else size, what)
    return out


@contextmanager
def merged(layout: Layout, image: Image) -> Iterator[Path]:
    overlay = Overlay2(layout)
    layers = overlay.create_container_layers(image.top_layer)
    try:
        yield overlay.mount(layers.rw_id)
    finally:
        overlay.remove_container_layers(layers.rw_id)


def umoci_rootfs(image_ref: str, dest: Path) -> Path:
    run(str(UMOCI), "unpack", "--image", image_ref, str(dest))
    return dest / "rootfs"


@needs_umoci
def test_an_image_built_with_umoci_loads(layout: Layout, tmp_path: Path) -> None:
    img = tmp_path / "img"
    run(str(UMOCI), "init", "--layout", str(img))
    run(str(UMOCI), "new", "--image", f"{img}:latest")
    bundle = tmp_path / "bundle"
    run(str(UMOCI), "unpack", "--image", f"{img}:latest", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir()
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "greeting").write_text("put in by umoci\n")
    (rootfs / "doomed").write_text("deleted in the next layer\n")
    run(str(UMOCI), "repack", "--image", f"{img}:latest", str(bundle))
    second = tmp_path / "second"
    run(str(UMOCI), "unpack", "--image", f"{img}:latest", str(second))
    (second / "rootfs" / "doomed").unlink()
    run(str(UMOCI), "repack", "--image", f"{img}:latest", str(second))
    run(str(UMOCI), "config", "--image", f"{img}:latest", "--config.cmd", "/bin/sh")

    store = ImageStore(layout)
    [untagged] = store.load(img)  # umoci writes only the tag ("latest") in ref.name
    assert untagged.repo_tags == ()
    [image] = store.load(img, name="umoci/test")
    assert image.repo_tags == ("umoci/test:latest",)
    assert image.config["config"]["Cmd"] == ["/bin/sh"]
    assert len(image.chain_ids) == 2
    top = Overlay2(layout).diff_dir(image.top_layer)
    assert stat.S_ISCHR(os.lstat(top / "doomed").st_mode)  # umoci's whiteout, converted
    reference = view(umoci_rootfs(f"{img}:latest", tmp_path / "check"))
    with merged(layout, image) as root:
        assert (root / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
        assert (root / "etc" / "greeting").read_text() == "put in by umoci\n"
        assert not os.path.lexists(root / "doomed")
        assert view(root) == reference
        out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo ran"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert out.stdout == "ran\n"


@needs_umoci
def test_umoci_reads_our_test_image_as_our_overlay_does(layout: Layout, tmp_path: Path) -> None:
    oci = images.write_oci_layout(images.busybox_test_image(), tmp_path / "oci", images.BUSYBOX_REF)
    [image] = ImageStore(layout).load(oci)
    reference = view(umoci_rootfs(f"{oci}:test", tmp_path / "check"))
    assert "etc/doomed" not in reference and "opt/lower/c" in reference  # umoci applied them
    with merged(layout, image) as root:
        assert view(root) == reference


@needs_skopeo
@pytest.mark.parametrize("target", ["docker-archive", "oci", "oci-archive"])
def test_layouts_converted_by_skopeo_load(layout: Layout, tmp_path: Path, target: str) -> None:
    spec = images.busybox_test_image()
    oci = images.write_oci_layout(spec, tmp_path / "oci", images.BUSYBOX_REF)
    ours = images.chain_ids(images.diff_ids(spec))
    if target == "docker-archive":
        dest = tmp_path / "converted.tar"
        ref = f"docker-archive:{dest}:bulkhead/skopeo:test"
    elif target == "oci":
        dest = tmp_path / "converted"
        ref = f"oci:{dest}:test"
    else:
        dest = tmp_path / "converted-oci.tar"
        ref = f"oci-archive:{dest}:test"
    run(str(SKOPEO), "--insecure-policy", "copy", "-q", f"oci:{oci}:test", ref)
    store = ImageStore(layout)
    [image] = store.load(dest, name="bulkhead/skopeo")
    assert image.repo_tags == ("bulkhead/skopeo:test",)
    # skopeo may rewrite the config, but the layers are ours, byte for byte.
    assert list(image.chain_ids) == ours
    assert image.config["config"]["Entrypoint"] == ["/docker-entrypoint.sh"]
    with merged(layout, image) as root:
        assert not os.path.lexists(root / images.DOOMED_PATH.lstrip("/"))
        assert sorted(os.listdir(root / images.OPAQUE_DIR.lstrip("/"))) == list(images.OPAQUE_AFTER)
        assert (root / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
        ran = subprocess.run(["chroot", str(root), "/docker-entrypoint.sh", "cat", "/etc/group"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert ran.stdout.startswith("root:x:0:")
        assert ran.stderr.splitlines() == list(images.ENTRYPOINT_MESSAGES)
