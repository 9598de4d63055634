"""Regressions of the path-handling CVEs (research/security.md §1): an image whose /dev, /proc or
/sys is a symlink, and mount destinations that traverse symlinks, all pointing out of the
rootfs at a host canary of the test's own (conformance/_canary.py).

A runtime must resolve every container path inside the container's root (config.md: mount
destinations and root.path are container paths), so each attack either makes the runtime
refuse or stays inside the rootfs: the canary is never created in, written, chowned or mounted
on, which the host checks after create, run and delete. Each verdict has its control in the same
test: the same config, given the canary as a bind mount, writes it and the host sees that.
"""

from __future__ import annotations

import contextlib
import posixpath
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead.bundle import Bundle
from bulkhead.containers import ContainerFactory
from bulkhead.spec import Mount, Spec
from conformance._canary import (
    CANARY_TEXT,
    make_canary,
    plant_link,
    relative_link,
    with_mounts,
    without_dev_mounts,
    witness_control,
)
from conformance._mounts import PRINT_MOUNTINFO, bind, split_output, tmpfs, top_mount
from conformance._support import refused, sh

# statfs(2) f_type of procfs and sysfs (<linux/magic.h>), as busybox `stat -f -c %t` prints it.
PROC_SUPER_MAGIC = "9fa0"
SYSFS_MAGIC = "62656572"


@dataclass(frozen=True)
class Link:
    """A symlink to plant: to ``target`` by its absolute host path, or by a relative path that
    climbs out of the rootfs to it (computed once the bundle's place is known)."""

    target: Path
    relative: bool = False

    def text(self, bundle: Bundle, inside: str) -> str:
        return relative_link(bundle, inside, self.target) if self.relative else str(self.target)


def _run_hostile(
    containers: ContainerFactory, spec: Spec, links: dict[str, Link], look: Sequence[str] = ()
) -> tuple[bool, str, dict[str, tuple[str, str]]]:
    """Runs ``spec`` in a bundle whose rootfs has ``links`` (container path -> link) planted.

    Returns whether the runtime ran it, what it printed, and for each container path in
    ``look`` (through a planted link) where it resolves inside the container root and what the
    bundle's upper layer holds there ("dir", "file", "absent"): what the runtime made inside
    the rootfs, read before the bundle goes.
    """
    with containers.bundle(spec) as (cid, bundle):
        texts = {inside: link.text(bundle, inside) for inside, link in links.items()}
        for inside, text in texts.items():
            plant_link(bundle, inside, text)
        call = containers.client.run(cid, bundle.path)
        made = {}
        for path in look:
            resolved = _resolve_in_root(path, texts)
            where = bundle.upper / resolved.lstrip("/")
            kind = "dir" if where.is_dir() else "file" if where.is_file() else "absent"
            made[path] = (resolved, kind)
        return not refused(call), call.stdout, made


def _resolve_in_root(path: str, links: dict[str, str]) -> str:
    """``path`` with a planted link in it resolved as inside the container root: relative to
    the link's directory, with ``..`` stopping at ``/`` (path_resolution(7) under chroot)."""
    for inside, text in links.items():
        if path == inside or path.startswith(inside + "/"):
            rest = path[len(inside) :]
            return posixpath.normpath(posixpath.join(posixpath.dirname(inside), text)) + rest
    return path


# --- /dev is a symlink in the image -------------------------------------------------------------


def _dev_symlink_case(containers: ContainerFactory, tmp_path: Path, kind: str) -> None:
    # Names a runtime makes in /dev (config-linux.md "Default Devices", runtime-linux.md /dev
    # symlinks, ptmx): a runtime following the link deletes, replaces or creates them here.
    names = ("marker", "null", "zero", "full", "tty", "ptmx", "console", "fd", "stdin")
    canary = make_canary(tmp_path, files=names)
    # Every script ends in `true`: under `run` a non-zero exit means the runtime refused.
    script = "stat -L -c '%F %t:%T' /dev/null; echo x >/dev/null && echo wrote; true"
    spec = without_dev_mounts(containers.spec(sh(script)))
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    link = Link(canary.path, relative=kind == "relative")
    ran, out, _ = _run_hostile(containers, spec, {"/dev": link})
    canary.assert_untouched(before, f"a rootfs whose /dev is a {kind} symlink to it")
    if ran:
        # Confined: the container still got a working null device of its own.
        assert out.split("\n")[:2] == ["character special file 1:3", "wrote"], out


@pytest.mark.cve("CVE-2026-41579")
@pytest.mark.spec("config-linux.default-devices.1")
def test_an_absolute_dev_symlink_in_the_image_leaves_the_host_untouched(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    _dev_symlink_case(containers, tmp_path, "absolute")


@pytest.mark.cve("CVE-2026-47766")
@pytest.mark.spec("config-linux.default-devices.1")
def test_a_relative_dev_symlink_in_the_image_leaves_the_host_untouched(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    _dev_symlink_case(containers, tmp_path, "relative")


# --- /proc and /sys are symlinks in the image ---------------------------------------------------


def _pseudo_fs_symlink_case(
    containers: ContainerFactory, tmp_path: Path, inside: str, magic: str, kind: str
) -> None:
    canary = make_canary(tmp_path, dirs=("self", "sys"))
    # A trailing slash makes statfs(2) follow a symlink at the path.
    spec = containers.spec(sh(f"stat -f -c %t {inside}/ 2>&1; true"))
    witness_control(containers, canary, spec)
    control = containers.run(spec)
    assert control.exit_code == 0 and control.stdout.strip() == magic, control
    before = canary.snapshot()
    link = Link(canary.path, relative=kind == "relative")
    ran, out, _ = _run_hostile(containers, spec, {inside: link})
    canary.assert_untouched(before, f"a rootfs whose {inside} is a {kind} symlink to it")
    if ran:
        # Accepted only if the filesystem the container sees at the path is still the real one
        # (CVE-2019-19921: a fake /proc defeats the LSM label written through it).
        assert out.strip() == magic, f"{inside} inside is not the kernel's filesystem: {out!r}"


@pytest.mark.cve("CVE-2023-27561")
@pytest.mark.spec("config-linux.default-filesystems.1")
def test_an_absolute_proc_symlink_in_the_image_is_refused_or_confined(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    _pseudo_fs_symlink_case(containers, tmp_path, "/proc", PROC_SUPER_MAGIC, "absolute")


@pytest.mark.cve("CVE-2023-28642")
@pytest.mark.spec("config-linux.default-filesystems.1")
def test_a_relative_proc_symlink_in_the_image_is_refused_or_confined(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    _pseudo_fs_symlink_case(containers, tmp_path, "/proc", PROC_SUPER_MAGIC, "relative")


@pytest.mark.cve("CVE-2019-19921")
@pytest.mark.spec("config-linux.default-filesystems.1")
def test_a_sys_symlink_in_the_image_is_refused_or_confined(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    _pseudo_fs_symlink_case(containers, tmp_path, "/sys", SYSFS_MAGIC, "absolute")


# --- mount destinations through symlinks --------------------------------------------------------


@pytest.mark.cve("CVE-2021-30465")
@pytest.mark.spec("config.mounts.apply-mounts", "config.mounts.3")
def test_a_mount_destination_through_an_absolute_symlink_stays_in_the_rootfs(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    spec = with_mounts(containers.spec(sh(f"ls -a /etc/bh-link/sub; {PRINT_MOUNTINFO}")),
                       tmpfs("/etc/bh-link/sub"))  # fmt: skip
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    ran, out, made = _run_hostile(
        containers, spec, {"/etc/bh-link": Link(canary.path)}, look=["/etc/bh-link/sub"]
    )
    canary.assert_untouched(before, "a mount destination through a symlink to it")
    if ran:
        # The link resolved inside the root: the tmpfs sits at the canary's path *inside the
        # container*, made in the rootfs (the upper layer), never on the host.
        _, mounts = split_output(out)
        inside, kind = made["/etc/bh-link/sub"]
        found = top_mount(mounts, inside)
        assert found is not None and found.fstype == "tmpfs", (
            f"no tmpfs at {inside} inside the container: {[m.point for m in mounts]}"
        )
        assert kind == "dir", f"the mount point {inside} was not made in the rootfs"


@pytest.mark.cve("CVE-2024-45310")
@pytest.mark.spec("config.mounts.apply-mounts")
def test_a_bind_destination_through_a_relative_symlink_stays_in_the_rootfs(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_text("from the bind source\n")
    spec = with_mounts(containers.spec(sh("cat /etc/bh-rel/sub/file 2>&1; true")),
                       bind("/etc/bh-rel/sub", source, "rbind", "ro"))  # fmt: skip
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    link = Link(canary.path, relative=True)
    ran, out, made = _run_hostile(containers, spec, {"/etc/bh-rel": link}, look=["/etc/bh-rel/sub"])
    canary.assert_untouched(before, "a bind destination through a relative symlink to it")
    if ran:
        assert out == "from the bind source\n", out
        # ``..`` stops at the container's /: the mount point is made in the rootfs.
        inside, kind = made["/etc/bh-rel/sub"]
        assert kind == "dir", f"the mount point {inside} was not made in the rootfs"


@pytest.mark.cve("CVE-2019-18837")
@pytest.mark.spec("config.mounts.apply-mounts")
def test_a_file_bind_onto_a_dangling_symlink_creates_nothing_on_the_host(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # crun #111: rootfs/etc/resolv.conf -> /opt/resolv.conf made /opt/resolv.conf on the host.
    canary = make_canary(tmp_path)
    source = tmp_path / "resolv.conf"
    source.write_text("nameserver 192.0.2.53\n")
    spec = with_mounts(containers.spec(sh("cat /etc/resolv.conf 2>&1; true")),
                       bind("/etc/resolv.conf", source, "bind", "ro"))  # fmt: skip
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    target = canary.file("resolv.conf")
    ran, out, made = _run_hostile(
        containers, spec, {"/etc/resolv.conf": Link(target)}, look=["/etc/resolv.conf"]
    )
    canary.assert_untouched(before, "a file bind onto a dangling symlink to it")
    assert not target.exists()
    if ran:
        assert out == "nameserver 192.0.2.53\n", out
        inside, kind = made["/etc/resolv.conf"]
        assert kind == "file", f"the mount point {inside} was not made in the rootfs"


# --- a mount over /proc -------------------------------------------------------------------------

# An IPC-namespaced sysctl (ipc_namespaces(7)): the runtime writes it through /proc/sys after the
# config's mounts, and the host reads the container's value by entering only its IPC namespace.
SYSCTL, SYSCTL_VALUE = "kernel.msgmax", "12345"
SYSCTL_FILE = Path("/proc/sys/kernel/msgmax")


def _sysctl_in(pid: int) -> str:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "--ipc", "cat", str(SYSCTL_FILE)],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return done.stdout.strip()


@contextlib.contextmanager
def _host_sysctl_kept() -> Iterator[str]:
    """The host's own value, checked unchanged afterwards and put back if a runtime wrote it."""
    before = SYSCTL_FILE.read_text().strip()
    try:
        yield before
    finally:
        after = SYSCTL_FILE.read_text().strip()
        if after != before:
            SYSCTL_FILE.write_text(before)
        assert after == before, f"the host's {SYSCTL} changed from {before} to {after}"


def _sysctl_applied(containers: ContainerFactory, spec: Spec) -> tuple[bool, str]:
    """Creates ``spec`` (the runtime writes its sysctl during create); returns whether it was
    accepted and, if so, the value the host reads in the container's IPC namespace."""
    with containers.container(spec, create=False) as ctr:
        if refused(ctr.create(check=False)):
            return False, ""
        return True, _sysctl_in(ctr.pid)


@pytest.mark.cve("CVE-2019-16884")
@pytest.mark.spec("config-linux.sysctl.apply-sysctl", "config-linux.default-filesystems.1")
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_a_mount_over_proc_never_takes_the_writes_meant_for_procfs(
    containers: ContainerFactory, tmp_path: Path, kind: str
) -> None:
    # runc #2128: an image volume over /proc held fake files, so the AppArmor label the runtime
    # wrote to /proc/self/attr/exec landed in a tmpfs. The same write path carries sysctls
    # (/proc/sys/...): a fake procfs tree of our own stands in for the volume.
    canary = make_canary(tmp_path, dirs=("sys", "self"))
    (canary.path / "sys" / "kernel").mkdir()
    (canary.path / "sys" / "kernel" / "msgmax").write_text(CANARY_TEXT)
    spec = containers.spec(["sleep", "1000"])
    assert spec.linux is not None
    spec.linux.sysctl = {SYSCTL: SYSCTL_VALUE}
    witness_control(containers, canary, spec)
    with _host_sysctl_kept() as host_value:
        assert host_value != SYSCTL_VALUE, f"the host already has {SYSCTL}={SYSCTL_VALUE}"
        # Control: with the kernel's /proc the sysctl is applied, and the host sees it there.
        assert _sysctl_applied(containers, spec) == (True, SYSCTL_VALUE)
        over: Mount = tmpfs("/proc") if kind == "tmpfs" else bind("/proc", canary.path, "rbind")
        before = canary.snapshot()
        accepted, value = _sysctl_applied(containers, with_mounts(spec, over))
    canary.assert_untouched(before, f"a {kind} mount over /proc")
    if accepted:
        assert value == SYSCTL_VALUE, (
            f"{SYSCTL} was accepted under a {kind} over /proc but not applied (it reads {value})"
        )
