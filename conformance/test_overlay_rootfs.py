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

from bulkhead.containers import ContainerFactory
from bulkhead.rootfs import FIXTURE_CONTENT, FIXTURE_FILES
from conformance._support import sh

ROOT_FSTYPE = "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo | sed 's/.* - //'"


@pytest.mark.spec("config.root.apply-root-path")
def test_the_container_root_is_the_overlay(containers: ContainerFactory) -> None:
    result = containers.run_args("sh", "-c", ROOT_FSTYPE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[:1] == ["overlay"], f"root mount: {result.stdout!r}"


@pytest.mark.spec("config.root.apply-root-path")
def test_inode_and_block_totals_match_the_backing_filesystem(
    containers: ContainerFactory,
) -> None:
    with containers.bundle(containers.spec(["bulkhead-probe", "statvfs", "/"])) as (cid, b):
        result = containers.client.run(cid, b.path)
        assert result.returncode == 0, result.stderr
        inside = dict(f.split("=", 1) for f in result.stdout.split())
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
        fields = dict(f.split("=", 1) for f in result.stdout.split())
        assert fields["type"] == "file"
        assert int(fields["ino"]) == os.stat(lower).st_ino, "the file was copied, not shared"
        assert not (b.upper / "bin" / "busybox").exists(), "reading a file copied it up"
