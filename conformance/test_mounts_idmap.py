"""Idmapped mounts (config.md "Mounts": uidMappings/gidMappings, the idmap and ridmap options;
features.md "mountExtensions.idmap").

An idmapped bind shows a file's owner through the mount's mapping: a file whose owner on disk is
``containerID`` shows as ``hostID`` (mount_setattr(2) MOUNT_ATTR_IDMAP). Owners are read with
``stat`` inside the container, and compared with the same source bound without the option (the
control: the owner on disk). Runtimes that do not know these fields ignore them, so every test
here runs only where the runtime's ``features`` declares mountExtensions.idmap.enabled.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.runtime import RuntimeCallError, RuntimeClient
from bulkhead.spec import IDMapping, Mount, Namespace, Spec
from conformance._mounts import bind, host_tree, run_with, with_mounts
from conformance._support import expect_refusal, expect_success

ON_DISK = 1000  # the owner of the source's files on the host
MAPPED = 2345  # what a mount mapping turns it into
USERNS_HOST = 100000  # the container's user namespace: 0..65535 -> 100000..165535


@functools.cache
def idmap_declared(runtime: RuntimeClient) -> bool | None:
    """features.md mountExtensions.idmap.enabled; None when the runtime has no ``features``."""
    try:
        features = runtime.features()
    except (RuntimeCallError, ValueError):
        return None
    linux = features.get("linux")
    extensions = linux.get("mountExtensions") if isinstance(linux, dict) else None
    idmap = extensions.get("idmap") if isinstance(extensions, dict) else None
    return isinstance(idmap, dict) and idmap.get("enabled") is True


def skip_unless_idmap(runtime: RuntimeClient) -> None:
    declared = idmap_declared(runtime)
    if declared is None:
        pytest.skip(f"{runtime.name} has no `features` output declaring idmapped mounts")
    if not declared:
        pytest.skip(f"{runtime.name}'s features do not declare mountExtensions.idmap.enabled")


def mapping(container_id: int, host_id: int, size: int = 1) -> list[IDMapping]:
    return [IDMapping(container_id=container_id, host_id=host_id, size=size)]


def idmapped(destination: str, source: Path, *options: str, mapped: bool = True) -> Mount:
    mount = bind(destination, source, *options)
    if mapped:
        mount.uid_mappings = mapping(ON_DISK, MAPPED)
        mount.gid_mappings = mapping(ON_DISK, MAPPED)
    return mount


def owned_files(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "file").write_text("owned\n")
    os.chown(base / "file", ON_DISK, ON_DISK)
    return base


def owners(lines: list[str]) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in lines)


def skip_unless_searchable(*paths: Path) -> None:
    """A user namespace's root is host uid 100000: it must be able to walk to the bundle and to
    the bind sources (runc binds the rootfs from inside the new namespaces)."""
    for path in paths:
        for d in [path, *path.parents]:
            if not os.stat(d).st_mode & 0o001:
                pytest.skip(
                    f"{d} is not searchable by others: a user namespace's root (host uid "
                    f"{USERNS_HOST}) cannot reach the bundle or the bind source under it"
                )


@pytest.fixture
def searchable_tmp(containers: ContainerFactory) -> Iterator[Path]:
    """A directory for bind sources that a user namespace's root can reach: pytest's tmp_path
    lies under a 0700 directory of the host's root; the session's directory is searchable."""
    path = containers.base_dir / f"{containers.new_id()}-sources"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def with_userns(spec: Spec) -> Spec:
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="user"))
    spec.linux.uid_mappings = mapping(0, USERNS_HOST, 65536)
    spec.linux.gid_mappings = mapping(0, USERNS_HOST, 65536)
    return spec


STAT = "for d in plain mapped; do echo \"$d $(stat -c '%u:%g' /srv/$d/file)\"; done"


@pytest.mark.spec("config.linux-mount-options.61", "config.linux-mount-options.63")
def test_idmap_shows_the_owner_through_the_mount_mapping(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    skip_unless_idmap(containers.client)
    source = owned_files(tmp_path / "src")
    lines, _ = run_with(
        containers,
        STAT,
        bind("/srv/plain", source, "bind"),
        idmapped("/srv/mapped", source, "bind", "idmap"),
    )
    assert owners(lines) == {"plain": f"{ON_DISK}:{ON_DISK}", "mapped": f"{MAPPED}:{MAPPED}"}


@pytest.mark.spec("config.linux-mount-options.69", "config.linux-mount-options.71")
def test_ridmap_maps_the_submounts_too(containers: ContainerFactory, tmp_path: Path) -> None:
    skip_unless_idmap(containers.client)
    with host_tree(tmp_path) as tree:
        for f in (tree / "top", tree / "sub" / "over"):
            os.chown(f, ON_DISK, ON_DISK)
        script = 'for f in top sub/over; do echo "$f $(stat -c %u /srv/mapped/$f)"; done'
        lines, _ = run_with(containers, script, idmapped("/srv/mapped", tree, "rbind", "ridmap"))
    assert owners(lines) == {"top": str(MAPPED), "sub/over": str(MAPPED)}


@pytest.mark.spec("config.linux-mount-options.63", "config.linux-mount-options.71")
@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_the_mount_mapping_wins_over_the_user_namespace_mapping(
    containers: ContainerFactory, searchable_tmp: Path, option: str
) -> None:
    # In a container whose user namespace maps 0 -> 100000: the mount's own mapping
    # (1000 -> 100000 + 2345) shows the file as 2345 inside, where the user namespace's mapping
    # would show 1000 and no mapping at all the overflow uid.
    skip_unless_idmap(containers.client)
    skip_unless_searchable(containers.base_dir, searchable_tmp)
    source = owned_files(searchable_tmp / "src")
    # At /: the runtime makes the mount point as the mapped root, which owns only the
    # container's / (the image's directories belong to the host's root, unmapped there).
    mount = bind("/mapped", source, "rbind" if option == "ridmap" else "bind", option)
    mount.uid_mappings = mapping(ON_DISK, USERNS_HOST + MAPPED)
    mount.gid_mappings = mapping(ON_DISK, USERNS_HOST + MAPPED)
    spec = with_userns(containers.spec())
    lines, _ = run_with(containers, "stat -c '%u:%g' /mapped/file", mount, spec=spec)
    assert lines == [f"{MAPPED}:{MAPPED}"], lines


@pytest.mark.spec("config.linux-mount-options.65", "config.linux-mount-options.73")
@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_without_mappings_follows_the_user_namespace_or_fails(
    containers: ContainerFactory, searchable_tmp: Path, option: str
) -> None:
    # config.md: without mount mappings the runtime MAY use the user namespace's; if it does
    # not, it MUST fail. Never an unmapped mount: that would show the overflow uid (65534).
    skip_unless_idmap(containers.client)
    skip_unless_searchable(containers.base_dir, searchable_tmp)
    source = owned_files(searchable_tmp / "src")
    kind = "rbind" if option == "ridmap" else "bind"
    for mapped in (True, False):
        mount = bind("/mapped", source, kind, option)
        if mapped:  # the control: the same mount with its own mapping is accepted
            mount.uid_mappings = mapping(ON_DISK, USERNS_HOST + MAPPED)
            mount.gid_mappings = mapping(ON_DISK, USERNS_HOST + MAPPED)
        spec = with_mounts(
            with_userns(containers.spec(["stat", "-c", "%u", "/mapped/file"])), mount
        )
        with containers.bundle(spec) as (cid, bundle):
            call = containers.client.run(cid, bundle.path, check=False)
        if mapped:
            expect_success(call, f"a {option} mount with mappings in a user namespace")
            assert call.stdout.split() == [str(MAPPED)], call.stdout
        elif call.returncode == 0:
            assert call.stdout.split() == [str(ON_DISK)], (
                f"{option} without mappings showed the owner as {call.stdout.strip()}: "
                "neither the user namespace's mapping nor an error"
            )


@pytest.mark.spec("config.linux-mount-options.66", "config.linux-mount-options.74")
@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_without_mappings_or_user_namespace_is_an_error(
    containers: ContainerFactory, tmp_path: Path, option: str
) -> None:
    skip_unless_idmap(containers.client)
    source = owned_files(tmp_path / "src")
    kind = "rbind" if option == "ridmap" else "bind"
    for mapped in (True, False):
        spec = with_mounts(
            containers.spec(["true"]), idmapped("/srv/mapped", source, kind, option, mapped=mapped)
        )
        with containers.bundle(spec) as (cid, bundle):
            call = containers.client.run(cid, bundle.path, check=False)
        if mapped:
            expect_success(call, f"a {option} mount with its own mappings")
        else:
            expect_refusal(call, f"{option} with no mappings and no user namespace")
