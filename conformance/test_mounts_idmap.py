"""Idmapped mounts (config.md "Mounts": uidMappings/gidMappings, the idmap and ridmap options;
features.md "mountExtensions.idmap").

An idmapped bind shows a file's owner through the mount's mapping: a file whose owner on disk is
``containerID`` shows as ``hostID`` (mount_setattr(2) MOUNT_ATTR_IDMAP), and a file made through
it is stored with the owner mapped back. Owners are read with ``stat`` inside the container and
on the host, and compared with the same source bound without the option (the control: the owner
on disk).

Which runtimes are judged. A runtime whose ``features`` declares mountExtensions.idmap.enabled
is judged; one that declares it false is skipped (it says it does not parse the fields). Any
other runtime (no ``features`` verb, as crun 1.8; or features that say nothing of idmap, as runc
1.1) is judged by what it does, once per session: a container with an idmapped bind shows the
file's owner as

- mapped: the runtime implements idmapped mounts (features-linux.md counts a partial
  implementation), so all of config.md's idmap text applies to it and every test runs;
- unchanged, on-disk: it ignored the fields. config.md "Extensibility" says a runtime MUST ignore
  properties it does not know, and mount uidMappings/gidMappings only arrived in runtime-spec
  1.1.0 (the idmap/ridmap options in 1.2.0). So a runtime that declares an older spec (its
  features' ociVersionMax, else the ociVersion of the state it writes, runtime.md "State") did
  what its spec asks, and the tests skip saying so; one that declares 1.1.0 or later was given a
  property it could not apply and did not fail (runtime.md "create": it MUST generate an error),
  so the tests run and fail;
- anything else (an overflow id, no output): the tests run, and fail where it is wrong;
- refused: the runtime does not implement them and says so, as runtime.md asks: skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.runtime import RuntimeClient
from bulkhead.spec import IDMapping, Mount, Namespace, Spec
from conformance._idmap import MAPPED, ON_DISK, Probe, declared_idmap, judge
from conformance._mounts import bind, host_tree, run_with, with_mounts
from conformance._support import expect_refusal, expect_success

USERNS_HOST = 100000  # the container's user namespace: 0..65535 -> 100000..165535


def probe_idmap(containers: ContainerFactory) -> Probe:
    """Runs one container with an idmapped bind of a file owned by ``ON_DISK``."""
    source = containers.base_dir / f"{containers.new_id()}-idmap-probe"
    try:
        owned_files(source)
        spec = containers.spec(["stat", "-c", "%u:%g", "/srv/probe/file"])
        with_mounts(spec, idmapped("/srv/probe", source, "bind", "idmap"))
        with containers.container(spec, create=False) as ctr:
            call = ctr.create(check=False)
            if call.returncode != 0:
                error = (call.stderr.strip().splitlines() or [f"exit {call.returncode}"])[-1]
                return Probe(refused=error[-200:], owner="", state_version=None)
            version = ctr.state().oci_version
            ctr.start()
            ctr.wait_for("stopped")
            owner = (ctr.bundle.path / "stdout").read_text().strip()
        return Probe(refused=None, owner=owner, state_version=version)
    finally:
        shutil.rmtree(source, ignore_errors=True)


_JUDGED: dict[RuntimeClient, str | None] = {}


def skip_unless_idmap(containers: ContainerFactory) -> None:
    runtime = containers.client
    if runtime not in _JUDGED:
        enabled, spec_max = declared_idmap(runtime)
        probe = None if enabled is not None else probe_idmap(containers)
        _JUDGED[runtime] = judge(enabled, spec_max, probe)
    reason = _JUDGED[runtime]
    if reason is not None:
        pytest.skip(f"{runtime.name}: {reason}")


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
    skip_unless_idmap(containers)
    source = owned_files(tmp_path / "src")
    lines, _ = run_with(
        containers,
        STAT,
        bind("/srv/plain", source, "bind"),
        idmapped("/srv/mapped", source, "bind", "idmap"),
    )
    assert owners(lines) == {"plain": f"{ON_DISK}:{ON_DISK}", "mapped": f"{MAPPED}:{MAPPED}"}


@pytest.mark.spec("config.linux-mount-options.61", "config.linux-mount-options.63")
def test_a_file_made_through_the_mapping_is_stored_with_the_owner_mapped_back(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # mount_setattr(2): the mapping applies to what is written too. A process running as MAPPED
    # makes a file through the idmapped mount: the host finds it owned by ON_DISK. The control,
    # a plain bind of a world-writable directory: the same process's file is stored as MAPPED.
    skip_unless_idmap(containers)
    source = owned_files(tmp_path / "src")
    os.chown(source, ON_DISK, ON_DISK)  # MAPPED may write there, through the mapping
    plain = tmp_path / "plain"
    plain.mkdir()
    plain.chmod(0o777)
    spec = containers.spec()
    assert spec.process is not None and spec.process.user is not None
    spec.process.user.uid = spec.process.user.gid = MAPPED
    lines, _ = run_with(
        containers,
        "for d in mapped plain; do echo made > /srv/$d/made 2>&1 && echo $d made; done",
        bind("/srv/plain", plain, "bind"),
        idmapped("/srv/mapped", source, "bind", "idmap"),
        spec=spec,
    )
    assert lines == ["mapped made", "plain made"], (
        f"uid {MAPPED} could not make a file in each bind (the idmapped one shows its "
        f"directory as owned by {MAPPED} only through the mapping): {lines}"
    )
    stored = {p.parent.name: (p.stat().st_uid, p.stat().st_gid) for p in
              (source / "made", plain / "made")}  # fmt: skip
    assert stored == {"src": (ON_DISK, ON_DISK), "plain": (MAPPED, MAPPED)}


@pytest.mark.spec("config.linux-mount-options.69")
def test_ridmap_maps_the_submounts_too(containers: ContainerFactory, tmp_path: Path) -> None:
    skip_unless_idmap(containers)
    with host_tree(tmp_path) as tree:
        for f in (tree / "top", tree / "sub" / "over"):
            os.chown(f, ON_DISK, ON_DISK)
        script = 'for f in top sub/over; do echo "$f $(stat -c %u /srv/mapped/$f)"; done'
        lines, _ = run_with(containers, script, idmapped("/srv/mapped", tree, "rbind", "ridmap"))
    assert owners(lines) == {"top": str(MAPPED), "sub/over": str(MAPPED)}


@pytest.mark.spec("config.linux-mount-options.63")
def test_the_mount_mapping_wins_over_the_user_namespace_mapping(
    containers: ContainerFactory, searchable_tmp: Path
) -> None:
    mount_mapping_wins(containers, searchable_tmp, "idmap")


@pytest.mark.spec("config.linux-mount-options.71")
def test_the_ridmap_mount_mapping_wins_over_the_user_namespace_mapping(
    containers: ContainerFactory, searchable_tmp: Path
) -> None:
    mount_mapping_wins(containers, searchable_tmp, "ridmap")


def mount_mapping_wins(containers: ContainerFactory, searchable_tmp: Path, option: str) -> None:
    # In a container whose user namespace maps 0 -> 100000: the mount's own mapping
    # (1000 -> 100000 + 2345) shows the file as 2345 inside, where the user namespace's mapping
    # would show 1000 and no mapping at all the overflow uid.
    skip_unless_idmap(containers)
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


@pytest.mark.spec("config.linux-mount-options.65")
def test_idmap_without_mappings_follows_the_user_namespace_or_fails(
    containers: ContainerFactory, searchable_tmp: Path
) -> None:
    follows_the_user_namespace_or_fails(containers, searchable_tmp, "idmap")


@pytest.mark.spec("config.linux-mount-options.73")
def test_ridmap_without_mappings_follows_the_user_namespace_or_fails(
    containers: ContainerFactory, searchable_tmp: Path
) -> None:
    follows_the_user_namespace_or_fails(containers, searchable_tmp, "ridmap")


def follows_the_user_namespace_or_fails(
    containers: ContainerFactory, searchable_tmp: Path, option: str
) -> None:
    # config.md: without mount mappings the runtime MAY use the user namespace's; if it does
    # not, it MUST fail. Never an unmapped mount: that would show the overflow uid (65534).
    skip_unless_idmap(containers)
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


@pytest.mark.spec("config.linux-mount-options.66")
def test_idmap_without_mappings_or_user_namespace_is_an_error(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    no_mappings_no_user_namespace_is_an_error(containers, tmp_path, "idmap")


@pytest.mark.spec("config.linux-mount-options.74")
def test_ridmap_without_mappings_or_user_namespace_is_an_error(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    no_mappings_no_user_namespace_is_an_error(containers, tmp_path, "ridmap")


def no_mappings_no_user_namespace_is_an_error(
    containers: ContainerFactory, tmp_path: Path, option: str
) -> None:
    skip_unless_idmap(containers)
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
