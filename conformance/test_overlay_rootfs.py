"""The rootfs on overlay: what the container sees and where its writes land.

Each bundle's rootfs is an overlay whose lower layer is the suite's shared image and whose
upper layer is private to the container (config.md: Root). These tests check, from inside and
from the host, that the runtime gives the container exactly that filesystem: no copy, no
write-through to the shared layer, inode numbers of unchanged files shared with the lower.
"""

from __future__ import annotations

import os
import stat

import pytest

from bulkhead.bundle import Bundle
from bulkhead.containers import ContainerFactory
from bulkhead.rootfs import FIXTURE_CONTENT, FIXTURE_FILES
from conformance._mounts import (
    PRINT_MOUNTINFO,
    MountEntry,
    device_of,
    fields,
    split_output,
    top_mount,
)
from conformance._support import sh


def marker_name(cid: str) -> str:
    return f"/marker-{cid}"


def leave_marker(cid: str, b: Bundle) -> str:
    """A file only this bundle's overlay holds: its name and content are unique to the test.

    Written through the host's view of the bundle's overlay mount (writing into a mounted
    overlay's upper directory behind its back is undefined, overlayfs.rst), so it lands in the
    upper layer, which this test then checks; the shared image and any copy of it lack it.
    """
    name, content = marker_name(cid), f"only in the upper layer of {cid}\n"
    (b.rootfs / name[1:]).write_text(content)
    assert (b.upper / name[1:]).read_text() == content, "the marker is not in the upper layer"
    assert not (b.image.path / name[1:]).exists()
    return content


def assert_root_is_this_overlay(b: Bundle, stat_line: str, mounts: list[MountEntry]) -> None:
    """``/`` inside is this bundle's overlay: its mount, its superblock, its upper layer."""
    root = top_mount(mounts, "/")
    assert root is not None, "no mount at / in the container's mountinfo"
    assert root.fstype == "overlay", f"the root mount is {root.fstype}, not the overlay"
    assert root.super_option("upperdir") == str(b.upper), (
        f"the root overlay's upper layer is {root.super_option('upperdir')}, not {b.upper}"
    )
    # Same superblock as the bundle's rootfs mount on the host: st_dev of / inside is the
    # anonymous device overlayfs got when the suite mounted it (and mountinfo agrees).
    host_dev = device_of(b.rootfs)
    probe = fields(stat_line)
    assert probe.get("dev") == host_dev, f"st_dev of / inside is {probe}, the bundle's {host_dev}"
    assert root.device == host_dev, f"the root mount is device {root.device}, not {host_dev}"


@pytest.mark.spec("config.root.apply-root-path")
def test_the_container_root_is_the_bundles_overlay(containers: ContainerFactory) -> None:
    cid = containers.new_id()
    script = f"bulkhead-probe stat /; cat {marker_name(cid)}; {PRINT_MOUNTINFO}"
    with containers.bundle(containers.spec(sh(script)), cid=cid) as (cid, b):
        content = leave_marker(cid, b)
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        lines, mounts = split_output(result.stdout)
        assert lines[1:] == [content.strip()], f"the marker is not seen inside: {lines}"
        assert_root_is_this_overlay(b, lines[0], mounts)


@pytest.mark.spec("config.root.apply-root-path")
def test_inode_and_block_totals_match_the_backing_filesystem(
    containers: ContainerFactory,
) -> None:
    cid = containers.new_id()
    script = (
        f"bulkhead-probe stat /; bulkhead-probe statvfs /; cat {marker_name(cid)}; "
        + PRINT_MOUNTINFO
    )
    with containers.bundle(containers.spec(sh(script)), cid=cid) as (cid, b):
        content = leave_marker(cid, b)
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        lines, mounts = split_output(result.stdout)
        # The totals alone also match a runtime that never pivots into this bundle when the
        # image and the work dir share a filesystem: first prove / is this bundle's overlay.
        assert lines[2:] == [content.strip()], f"the marker is not seen inside: {lines}"
        assert_root_is_this_overlay(b, lines[0], mounts)
        inside = fields(lines[1])
        backing = os.statvfs(b.upper)
        # overlayfs reports the upper layer's filesystem totals (statfs of the upper dir).
        assert int(inside["files"]) == backing.f_files
        assert int(inside["blocks"]) * int(inside["frsize"]) == backing.f_blocks * backing.f_frsize


@pytest.mark.spec("config.root.apply-root-path")
def test_writes_land_in_the_upper_layer_and_never_in_the_lower(
    containers: ContainerFactory,
) -> None:
    changed, created = FIXTURE_FILES[0], "/srv/bulkhead/created-inside"
    script = f"echo changed > {changed}; echo new > {created}"
    with containers.bundle(containers.spec(sh(script))) as (cid, b):
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        assert (b.upper / changed[1:]).read_text() == "changed\n"
        assert (b.upper / created[1:]).read_text() == "new\n"
        lower = containers.image.path
        assert (lower / changed[1:]).read_text() == FIXTURE_CONTENT, "the shared layer changed"
        assert not (lower / created[1:]).exists(), "a new file was written to the shared layer"


@pytest.mark.spec("config.root.apply-root-path")
def test_a_deleted_file_is_a_whiteout_in_the_upper_layer(containers: ContainerFactory) -> None:
    victim = FIXTURE_FILES[1]
    with containers.bundle(containers.spec(["rm", victim])) as (cid, b):
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        whiteout = os.lstat(b.upper / victim[1:])
        # overlayfs marks a deletion with a 0:0 character device in the upper layer.
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
        assert (containers.image.path / victim[1:]).read_text() == FIXTURE_CONTENT


@pytest.mark.spec("config.root.apply-root-path")
def test_unchanged_files_share_the_lower_layer_inode(containers: ContainerFactory) -> None:
    lower = containers.image.path / "bin" / "busybox"
    with containers.bundle(containers.spec(["bulkhead-probe", "stat", "/bin/busybox"])) as (
        cid,
        b,
    ):
        if os.stat(b.upper).st_dev != os.stat(lower).st_dev:
            pytest.skip(
                "upper and lower layers are on different filesystems here, so overlay "
                "reports its own inode numbers"
            )
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        seen = fields(result.stdout)
        assert seen["type"] == "file"
        assert int(seen["ino"]) == os.stat(lower).st_ino, "the file was copied, not shared"
        # The inode number alone is also the lower file's when the container runs on the image
        # itself: overlayfs on one filesystem reports the real inode with its own st_dev.
        merged = device_of(b.rootfs / "bin" / "busybox")
        if merged == device_of(lower):
            pytest.skip("overlayfs reports the lower layer's st_dev on this kernel")
        assert seen["dev"] == merged, f"/bin/busybox is on device {seen['dev']}, not the overlay"
        assert not (b.upper / "bin" / "busybox").exists(), "reading a file copied it up"
