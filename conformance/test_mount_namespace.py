"""Mount namespace, mounts and the read-only root (config.md: Root, Mounts; config-linux.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead import _sys
from bulkhead.containers import Container, ContainerFactory
from bulkhead.hostview import mount_points
from bulkhead.spec import Mount
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
def test_a_mount_made_on_the_host_is_invisible_inside(containers: ContainerFactory) -> None:
    with started(containers) as ctr:
        # Under the container's rootfs, so without a mount namespace it would show inside.
        target = ctr.bundle.rootfs / "srv" / "host-made"
        target.mkdir()
        _sys.mount("bulkhead-host", str(target), "tmpfs", "size=64k")
        try:
            inside = ctr.exec("sh", "-c", MOUNTINFO_POINTS)
            assert inside.exit_code == 0, inside.stderr
            assert "/srv/host-made" not in inside.stdout.split()
        finally:
            _sys.umount(str(target))


@pytest.mark.spec("config.root.5")
def test_a_readonly_root_refuses_writes(containers: ContainerFactory) -> None:
    spec = containers.spec(sh("touch /written; echo $?; bulkhead-probe statvfs /"), readonly=True)
    with containers.bundle(spec) as (cid, bundle):
        result = containers.client.run(cid, bundle.path)
        assert result.returncode == 0, result.stderr
        status, probe = result.stdout.split("\n", 1)
        assert status.strip() != "0", "touch succeeded on a read-only root"
        assert "readonly=yes" in probe
        assert not (bundle.upper / "written").exists()


@pytest.mark.spec("config.root.5")
def test_a_writable_root_accepts_writes(containers: ContainerFactory) -> None:
    # The control for the test above: same script, root not read-only.
    with containers.bundle(containers.spec(sh("touch /written"))) as (cid, bundle):
        result = containers.client.run(cid, bundle.path)
        assert result.returncode == 0, result.stderr
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
    spec = containers.spec(sh("bulkhead-probe statvfs /srv/ro; touch /srv/ro/x; echo $?"))
    assert spec.mounts is not None
    spec.mounts.append(
        Mount(destination="/srv/ro", type="tmpfs", source="tmpfs", options=["ro", "size=64k"])
    )
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    probe, status = result.stdout.strip().split("\n")
    assert "readonly=yes" in probe
    assert status != "0", "a file was created on a mount configured 'ro'"


@pytest.mark.spec("config.mounts.apply-mounts")
def test_a_bind_mount_shows_the_host_directory(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    (tmp_path / "hello").write_text(f"hello from {tmp_path.name}\n")
    spec = containers.spec(sh("cat /srv/shared/hello; touch /srv/shared/new; echo $?"))
    assert spec.mounts is not None
    spec.mounts.append(
        Mount(destination="/srv/shared", type="bind", source=str(tmp_path), options=["rbind", "ro"])
    )
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    content, status = result.stdout.rsplit("\n", 2)[:2]
    assert content == f"hello from {tmp_path.name}"
    assert status != "0", "a read-only bind mount accepted a new file"
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
