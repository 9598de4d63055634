"""Mount namespace, mounts and the read-only root (config.md: Root, Mounts; config-linux.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead import _sys
from bulkhead.containers import Container, ContainerFactory
from bulkhead.hostview import mount_points, namespace_id
from bulkhead.spec import Mount, Spec
from conformance._mounts import (
    MS_BIND,
    MS_PRIVATE,
    MS_SHARED,
    MS_SLAVE,
    PRINT_MOUNTINFO,
    fields,
    host_mounts,
    mounted,
    set_propagation,
    split_output,
    top_mount,
)
from conformance._support import WAIT_FOREVER, grant, sh, wait_ready

MOUNTINFO_POINTS = "cut -d' ' -f5 /proc/self/mountinfo"


@contextlib.contextmanager
def started(containers: ContainerFactory, *caps: str) -> Iterator[Container]:
    spec = grant(containers.spec(sh(WAIT_FOREVER)), *caps)
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        yield ctr


@pytest.mark.spec("config-linux.namespaces.apply-ns-mount")
def test_a_mount_made_inside_is_invisible_on_the_host(containers: ContainerFactory) -> None:
    with started(containers, "CAP_SYS_ADMIN") as ctr:
        target = f"/tmp/inside-{ctr.id}"
        made = ctr.exec("sh", "-c", f"mkdir -p {target} && mount -t tmpfs {ctr.id} {target}")
        assert made.exit_code == 0, made.stderr
        inside = ctr.exec("sh", "-c", MOUNTINFO_POINTS)
        assert target in inside.stdout.split(), "the probe cannot see the mount it made"
        host_sources = Path("/proc/self/mountinfo").read_text()
        assert ctr.id + " " not in host_sources and not any(
            p.endswith(target) for p in mount_points()
        ), "a mount made in the container appeared on the host"


@pytest.mark.spec("config-linux.namespaces.apply-ns-mount")
def test_a_mount_made_on_the_host_under_a_private_root_is_invisible_inside(
    containers: ContainerFactory,
) -> None:
    # The default case: rootfsPropagation unset, the bundle's overlay private on the host (as
    # the suite mounts it). The spec names no default propagation (runc makes the root a
    # slave, crun makes it private), so all this may claim is what a mount namespace alone
    # gives: with nothing to propagate, a host mount under the container's root stays out of
    # its table. A runtime without a mount namespace of its own shows it. That the probe would
    # see a propagated mount is shown by test_rootfs_propagation_decides_what_the_host_sends
    # [slave].
    with started(containers) as ctr:
        root = top_mount(host_mounts(), str(ctr.bundle.rootfs))
        assert root is not None and not root.tags, f"the bundle's rootfs propagates: {root}"
        assert namespace_id(ctr.pid, "mount") != namespace_id("self", "mount")
        # Under the container's rootfs, so without a mount namespace it would show inside.
        with mounted("bulkhead-host", ctr.bundle.rootfs / "srv" / "host-made", "tmpfs", "size=64k"):
            inside = ctr.exec("sh", "-c", MOUNTINFO_POINTS)
            assert inside.exit_code == 0, inside.stderr
            points = inside.stdout.split()
            assert "/proc" in points, f"the probe sees no mounts at all: {points}"
            assert "/srv/host-made" not in points


# rootfsPropagation value -> (the tag the root mount shows in mountinfo, whether a mount the
# host makes under the bundle's overlay after start shows inside). config-linux.md: "slave"
# receives the host's events; "private" does not; "unbindable" is private and unbindable;
# "shared" is a new peer group ("this does not mean that it's shared with the host") - a shared
# mount may also stay a slave of the host's group (mount_namespaces(7)), so no claim is made
# on what it receives.
PROPAGATION = {
    "slave": ("master", True),
    "private": (None, False),
    "unbindable": ("unbindable", False),
    "shared": ("shared", None),
}


@contextlib.contextmanager
def propagating_bundle(containers: ContainerFactory, spec: Spec) -> Iterator[Container]:
    """A created container whose root receives what the host mounts under its overlay.

    The bundle's overlay mount is made shared (a peer group of our own, on a mount that is
    ours), and the runtime is given as root a slave bind of it (root.path "rootfs-slave").
    A slave and not the shared mount itself: runc and crun turn a shared root private before
    pivot_root (pivot_root(2) refuses a shared mount), and a slave can never send the
    container's mounts back to the host - whatever the runtime does, nothing it mounts reaches
    the host (the host side of the slave lies in the bundle directory, watched by the sentinel).
    """
    assert spec.root is not None
    spec.root.path = "rootfs-slave"
    with containers.bundle(spec) as (cid, b):
        slave = b.path / "rootfs-slave"
        slave.mkdir()
        set_propagation(b.rootfs, MS_SHARED)
        try:
            _sys.mount(str(b.rootfs), str(slave), "", flags=MS_BIND)
            try:
                set_propagation(slave, MS_SLAVE)
                ctr = Container(cid, b, containers.client)
                try:
                    ctr.create()
                    yield ctr
                finally:
                    ctr.close_stdio()
            finally:
                _sys.umount(str(slave), detach=True)
        finally:
            set_propagation(b.rootfs, MS_PRIVATE)


@pytest.mark.spec(
    "config-linux.rootfs-mount-propagation.apply-rootfs-propagation",
    "config-linux.namespaces.apply-ns-mount",
)
@pytest.mark.parametrize("propagation", sorted(PROPAGATION))
def test_rootfs_propagation_decides_what_the_host_sends(
    containers: ContainerFactory, propagation: str
) -> None:
    tag, receives = PROPAGATION[propagation]
    spec = grant(containers.spec(sh(WAIT_FOREVER)))
    assert spec.linux is not None
    spec.linux.rootfs_propagation = propagation  # type: ignore[assignment]
    with propagating_bundle(containers, spec) as ctr:
        ctr.start()
        wait_ready(ctr)
        host_group = top_mount(host_mounts(), str(ctr.bundle.rootfs))
        assert host_group is not None and host_group.tag("shared"), host_group
        made = ctr.bundle.rootfs / "srv" / "host-made"
        with mounted("bulkhead-host", made, "tmpfs", "size=64k"):
            # The control, from the kernel: the host's own slave of the overlay receives it.
            mirror = ctr.bundle.path / "rootfs-slave" / "srv" / "host-made"
            assert top_mount(host_mounts(), str(mirror)) is not None, "no propagation here"
            inside = ctr.exec("sh", "-c", PRINT_MOUNTINFO)
            assert inside.exit_code == 0, inside.stderr
        _, mounts = split_output(inside.stdout)
        root = top_mount(mounts, "/")
        assert root is not None, "no root mount in the container's mountinfo"
        problems = []
        got = {t.partition(":")[0] for t in root.tags}
        if propagation == "shared":
            # A new peer group, not the host's; it may also be a slave (see PROPAGATION).
            if root.tag("shared") in (None, host_group.tag("shared")):
                problems.append(f"the root mount is {root.tags}, not in a new peer group")
        elif got != ({tag} if tag else set()):
            problems.append(f"the root mount is {root.tags or 'private'}, not {tag or 'private'}")
        seen = top_mount(mounts, "/srv/host-made") is not None
        if receives is not None and seen != receives:
            problems.append(
                "a mount the host made under the bundle's root "
                + ("did not show" if receives else "showed")
                + " inside"
            )
        assert not problems, f"rootfsPropagation {propagation}: " + "; ".join(problems)


@pytest.mark.spec("config.root.5")
def test_a_readonly_root_refuses_writes(containers: ContainerFactory) -> None:
    # EROFS, not any failure: a root-owned / refuses nobody's uid 0 here, so only the read-only
    # mount can say no (and mountinfo must say ro).
    script = f"bulkhead-probe create /written; bulkhead-probe statvfs /; {PRINT_MOUNTINFO}"
    with containers.bundle(containers.spec(sh(script), readonly=True)) as (cid, bundle):
        result = containers.client.run(cid, bundle.path)
        assert result.returncode == 0, result.stderr
        lines, mounts = split_output(result.stdout)
        assert len(lines) == 2, lines
        assert fields(lines[0]) == {"result": "error", "errno": "EROFS"}, lines[0]
        assert fields(lines[1]).get("readonly") == "yes", lines[1]
        root = top_mount(mounts, "/")
        assert root is not None and root.readonly, f"/ is not mounted ro: {root}"
        assert not (bundle.upper / "written").exists()


@pytest.mark.spec("config.root.5")
def test_a_writable_root_accepts_writes(containers: ContainerFactory) -> None:
    # The control for the test above: same probe, root not read-only.
    script = "bulkhead-probe create /written"
    with containers.bundle(containers.spec(sh(script))) as (cid, bundle):
        result = containers.client.run(cid, bundle.path)
        assert result.returncode == 0, result.stderr
        assert fields(result.stdout) == {"result": "ok"}, result.stdout
        assert (bundle.upper / "written").exists()


@pytest.mark.spec("config.mounts.apply-mounts", "config.mounts.1")
def test_mounts_are_made_in_order(containers: ContainerFactory) -> None:
    spec = containers.spec(sh(MOUNTINFO_POINTS))
    assert spec.mounts is not None
    # The second mount lands inside the first: it only exists if the first came before it.
    spec.mounts += [
        Mount(destination="/srv/outer", type="tmpfs", source="tmpfs", options=["size=64k"]),
        Mount(destination="/srv/outer/inner", type="tmpfs", source="tmpfs", options=["size=64k"]),
    ]
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    points = result.stdout.split()
    assert "/srv/outer" in points and "/srv/outer/inner" in points
    assert points.index("/srv/outer") < points.index("/srv/outer/inner")


@pytest.mark.spec("config.mounts.apply-mounts")
def test_mount_options_are_applied(containers: ContainerFactory) -> None:
    # /srv/ro is refused with EROFS (a fresh tmpfs is mode 1777: nothing else would refuse),
    # /srv/rw, the same mount without "ro", accepts the same write: the option made the change.
    script = "bulkhead-probe create /srv/ro/x; bulkhead-probe create /srv/rw/x; " + PRINT_MOUNTINFO
    spec = containers.spec(sh(script))
    assert spec.mounts is not None
    for where, extra in (("/srv/ro", ["ro"]), ("/srv/rw", [])):
        spec.mounts.append(
            Mount(destination=where, type="tmpfs", source="tmpfs", options=[*extra, "size=64k"])
        )
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines, mounts = split_output(result.stdout)
    assert [fields(line) for line in lines] == [
        {"result": "error", "errno": "EROFS"},
        {"result": "ok"},
    ], lines
    ro, rw = top_mount(mounts, "/srv/ro"), top_mount(mounts, "/srv/rw")
    assert ro is not None and ro.fstype == "tmpfs" and ro.readonly, ro
    assert rw is not None and rw.fstype == "tmpfs" and not rw.readonly, rw


@pytest.mark.spec("config.mounts.apply-mounts")
def test_a_bind_mount_shows_the_host_directory(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    (tmp_path / "hello").write_text(f"hello from {tmp_path.name}\n")
    script = "cat /srv/shared/hello; bulkhead-probe create /srv/shared/new"
    spec = containers.spec(sh(script))
    assert spec.mounts is not None
    spec.mounts.append(
        Mount(destination="/srv/shared", type="bind", source=str(tmp_path), options=["rbind", "ro"])
    )
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:1] == [f"hello from {tmp_path.name}"], lines
    # EROFS: the directory is root's and writable by its owner, so only "ro" can refuse.
    assert fields(lines[-1]) == {"result": "error", "errno": "EROFS"}, lines
    assert not (tmp_path / "new").exists()


@pytest.mark.spec("config.mounts.apply-bind-source")
def test_a_relative_bind_source_is_resolved_against_the_bundle(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec(["cat", "/srv/data/hello"])
    assert spec.mounts is not None
    spec.mounts.append(
        Mount(destination="/srv/data", type="bind", source="data", options=["rbind", "ro"])
    )
    with containers.bundle(spec) as (cid, bundle):
        (bundle.path / "data").mkdir()
        (bundle.path / "data" / "hello").write_text(f"bundle of {cid}\n")
        result = containers.client.run(cid, bundle.path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"bundle of {cid}\n"
