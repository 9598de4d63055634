"""Bind mounts, remounts, mount order and destinations (config.md "Mounts" and its Linux mount
options bind, rbind and remount).

What the container sees is read from its files and its own /proc/self/mountinfo. The host trees
are the test's own (conformance/_mounts.py ``host_tree``): a directory with a file, and a tmpfs
submount at ``sub`` that hides a file of the directory below it, so a bind and an rbind of the
same tree tell themselves apart by what ``sub`` holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.spec import Mount
from conformance._mounts import bind, fields, host_tree, mount_at, run_with, tmpfs, top_mount


@pytest.mark.spec("config.linux-mount-options.3", "config.mounts.apply-mounts")
def test_bind_shows_the_directory_without_its_submounts(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # mount(2) MS_BIND without MS_REC: the directory's own tree, where sub is a plain directory
    # holding "under"; the host's submount (holding "over") stays out.
    with host_tree(tmp_path) as tree:
        lines, table = run_with(
            containers, "cat /srv/b/top; ls /srv/b/sub", bind("/srv/b", tree, "bind")
        )
    assert lines == ["top", "under"], lines
    assert mount_at(table, "/srv/b").fstype == "tmpfs"
    assert top_mount(table, "/srv/b/sub") is None, "a bind brought the source's submount along"


@pytest.mark.spec("config.linux-mount-options.26", "config.mounts.apply-mounts")
def test_rbind_shows_the_directory_with_its_submounts(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    with host_tree(tmp_path) as tree:
        lines, table = run_with(
            containers, "cat /srv/b/top; ls /srv/b/sub", bind("/srv/b", tree, "rbind")
        )
    assert lines == ["top", "over"], lines
    sub = mount_at(table, "/srv/b/sub")
    assert sub.fstype == "tmpfs" and sub.source == "bulkhead-sub", sub


@pytest.mark.spec("config.linux-mount-options.3", "config.mounts.apply-mounts")
def test_a_file_can_be_bound_onto_a_path_the_image_lacks(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # The runtime makes the mount point (a file, as the source is one) and binds onto it.
    source = tmp_path / "hello"
    source.write_text(f"hello from {tmp_path.name}\n")
    lines, table = run_with(
        containers,
        "cat /srv/file/hello; bulkhead-probe stat /srv/file/hello",
        bind("/srv/file/hello", source, "bind", "ro"),
    )
    assert lines[0] == f"hello from {tmp_path.name}", lines
    assert fields(lines[1]).get("type") == "file", lines
    seen = mount_at(table, "/srv/file/hello")
    assert seen.readonly, seen


@pytest.mark.spec("config.linux-mount-options.30")
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_remount_changes_the_mount_already_there(
    containers: ContainerFactory, tmp_path: Path, kind: str
) -> None:
    # A second entry at the same destination with "remount": the mount there takes the new
    # flags (mount(2) MS_REMOUNT); it is not a second mount on top of the first.
    if kind == "tmpfs":
        first, again = tmpfs("/srv/re"), tmpfs("/srv/re", "remount", "ro")
    else:
        first, again = (
            bind("/srv/re", tmp_path, "bind"),
            bind("/srv/re", tmp_path, "bind", "remount", "ro"),
        )
    lines, table = run_with(containers, "bulkhead-probe create /srv/re/new", first, again)
    assert fields(lines[0]) == {"result": "error", "errno": "EROFS"}, lines
    found = [m for m in table if m.point == "/srv/re"]
    assert len(found) == 1, f"remount made another mount: {found}"
    assert found[0].readonly, found[0]
    assert not (tmp_path / "new").exists()


@pytest.mark.spec("config.mounts.1", "config.mounts.apply-mounts")
def test_a_later_mount_shadows_an_earlier_one_at_the_same_place(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    (tmp_path / "first" / "which").write_text("first\n")
    (tmp_path / "second" / "which").write_text("second\n")
    lines, table = run_with(
        containers,
        "cat /srv/both/which",
        bind("/srv/both", tmp_path / "first", "bind"),
        bind("/srv/both", tmp_path / "second", "bind"),
    )
    assert lines == ["second"], lines
    stack = [m for m in table if m.point == "/srv/both"]
    assert len(stack) == 2, stack
    # The later one is mounted on the earlier one (its parent), not beside it.
    assert stack[1].parent_id == stack[0].mount_id, stack


@pytest.mark.spec("config.mounts.5", "config.mounts.4")
def test_a_relative_destination_is_relative_to_the_container_root(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec()
    assert spec.process is not None and spec.process.cwd == "/"
    # From a cwd that is not "/": relative to the root, not to the process's cwd.
    spec.process.cwd = "/srv"
    lines, table = run_with(
        containers,
        "bulkhead-probe create /srv/rel/x",
        Mount(destination="srv/rel", type="tmpfs", source="tmpfs", options=["size=64k"]),
        spec=spec,
    )
    assert fields(lines[0]) == {"result": "ok"}, lines
    seen = mount_at(table, "/srv/rel")
    assert seen.fstype == "tmpfs", seen
    assert top_mount(table, "/srv/srv/rel") is None
