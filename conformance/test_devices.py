"""Devices (config-linux.md "Devices", "Default Devices", "Default Filesystems"; runtime-linux.md
"Dev symbolic links").

A device node is judged by what the kernel says of it: its file type and ``st_rdev``
(major:minor) from lstat(2), both inside the container (``bulkhead-probe stat``) and from the host
through ``/proc/<init>/root`` (the container's own root, whatever its mounts; proc(5)) or, for a
container whose /dev is the rootfs' own directory, in the overlay upper. A node is also used where
its driver defines a behaviour anyone can check: /dev/null swallows writes and reads empty,
/dev/zero reads zeros, /dev/full fails writes with ENOSPC (null(4), zero(4), full(4)).

The program of every container here prints its observations and exits; the host looks at the
created container before ``start``, while its init (already in the container's root) waits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.spec import Device, Spec
from conformance._mounts import PRINT_MOUNTINFO, fields, split_output, top_mount
from conformance._support import (
    assert_nothing_created,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
    sh,
)

# config-linux.md "Default Devices": path -> (major, minor), all character devices (devices.txt
# of the kernel: memory devices 1:N, /dev/tty 5:0).
DEFAULT_DEVICES = {
    "/dev/null": (1, 3),
    "/dev/zero": (1, 5),
    "/dev/full": (1, 7),
    "/dev/random": (1, 8),
    "/dev/urandom": (1, 9),
    "/dev/tty": (5, 0),
}
# runtime-linux.md "Dev symbolic links".
DEV_SYMLINKS = {
    "/dev/fd": "/proc/self/fd",
    "/dev/stdin": "/proc/self/fd/0",
    "/dev/stdout": "/proc/self/fd/1",
    "/dev/stderr": "/proc/self/fd/2",
}
# The major of the pts devices (devices.txt: 136-143 "Unix98 PTY slaves"); ptmx itself is 5:2.
PTMX = (5, 2)

STAT_EACH = 'for p in "$@"; do echo "$p $(bulkhead-probe stat "$p")"; done'


def probe_lines(stdout: str, paths: list[str]) -> dict[str, dict[str, str]]:
    """The ``bulkhead-probe stat`` fields the container printed for each of ``paths``."""
    seen = {}
    for line in stdout.splitlines():
        path, _, rest = line.partition(" ")
        if path in paths and rest.startswith("result="):
            seen[path] = fields(rest)
    missing = [p for p in paths if p not in seen]
    assert not missing, f"the container printed nothing for {missing}: {stdout!r}"
    return seen


def host_view(ctr: Container, path: str) -> os.stat_result:
    """lstat(2) of ``path`` in the container's root, from the host (proc(5) /proc/<pid>/root)."""
    pid = container_process(ctr).pid
    return os.lstat(f"/proc/{pid}/root{path}")


def rdev(st: os.stat_result) -> tuple[int, int]:
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def finished(ctr: Container) -> str:
    """Starts the created container, waits for its program to exit and returns its stdout."""
    ctr.start()
    ctr.wait_for("stopped")
    return (ctr.bundle.path / "stdout").read_text()


# --- default devices ----------------------------------------------------------------------------


@pytest.mark.spec("config-linux.default-devices.1")
def test_the_default_devices_are_character_devices_with_their_numbers(
    containers: ContainerFactory,
) -> None:
    paths = list(DEFAULT_DEVICES)
    with containers.container(containers.spec([*sh(STAT_EACH), "sh", *paths])) as ctr:
        for path, numbers in DEFAULT_DEVICES.items():
            st = host_view(ctr, path)
            assert stat.S_ISCHR(st.st_mode), f"{path} seen from the host: mode {st.st_mode:o}"
            assert rdev(st) == numbers, f"{path} seen from the host is {rdev(st)}"
        inside = probe_lines(finished(ctr), paths)
    for path, (major, minor) in DEFAULT_DEVICES.items():
        assert inside[path].get("type") == "chr", f"{path} inside: {inside[path]}"
        assert inside[path].get("rdev") == f"{major}:{minor}", f"{path} inside: {inside[path]}"


# Each line is one device's witness: a write swallowed, an empty read, zeros, ENOSPC, bytes.
USE_DEVICES = """
printf x >/dev/null && echo null-write=ok
echo "null-read=$(wc -c </dev/null)"
echo "zero=$(head -c 8 /dev/zero | od -An -tx1 | tr -d ' ')"
echo x 2>/tmp/full-error >/dev/full; echo "full-exit=$?"
grep -q 'No space left on device' /tmp/full-error && echo full-error=ENOSPC
echo "urandom=$(head -c 8 /dev/urandom | wc -c)"
echo "random=$(head -c 8 /dev/random | wc -c)"
"""


@pytest.mark.spec("config-linux.default-devices.1")
def test_the_default_devices_work(containers: ContainerFactory) -> None:
    result = containers.run(containers.spec(sh(USE_DEVICES)))
    seen = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    assert seen == {
        "null-write": "ok",
        "null-read": "0",
        "zero": "00" * 8,
        "full-exit": "1",
        "full-error": "ENOSPC",
        "urandom": "8",
        "random": "8",
    }, f"{result.stdout!r} {result.stderr!r}"


@pytest.mark.spec("config-linux.default-devices.1")
def test_ptmx_is_the_containers_own_pts_ptmx(containers: ContainerFactory) -> None:
    # config-linux.md: /dev/ptmx is a bind mount or a symlink of the container's /dev/pts/ptmx,
    # so allocating a pty inside gives one of the container's devpts, not the host's.
    script = f"{STAT_EACH}; readlink /dev/ptmx; {PRINT_MOUNTINFO}"
    paths = ["/dev/ptmx", "/dev/pts/ptmx"]
    result = containers.run(containers.spec([*sh(script), "sh", *paths]))
    head, mounts = split_output(result.stdout)
    seen = probe_lines("\n".join(head), paths)
    pts = top_mount(mounts, "/dev/pts")
    assert pts is not None and pts.fstype == "devpts", f"/dev/pts is not a devpts: {pts}"
    assert seen["/dev/pts/ptmx"].get("rdev") == "{}:{}".format(*PTMX), seen
    ptmx = seen["/dev/ptmx"]
    if ptmx.get("type") == "link":
        assert head[len(paths)] in ("pts/ptmx", "/dev/pts/ptmx"), f"/dev/ptmx -> {head}"
    else:
        # A bind mount: the same inode of the same (devpts) filesystem.
        assert (ptmx.get("dev"), ptmx.get("ino")) == (
            seen["/dev/pts/ptmx"].get("dev"),
            seen["/dev/pts/ptmx"].get("ino"),
        ), f"/dev/ptmx {ptmx} is not /dev/pts/ptmx {seen['/dev/pts/ptmx']}"


@pytest.mark.spec("runtime-linux.dev-symbolic-links.1")
def test_dev_fd_and_stdio_are_links_to_proc_self_fd(containers: ContainerFactory) -> None:
    script = 'for l in "$@"; do echo "$l=$(readlink "$l")"; done'
    links = list(DEV_SYMLINKS)
    with containers.container(containers.spec([*sh(script), "sh", *links])) as ctr:
        # Made during create (runtime-linux.md): the created container's root already has them.
        pid = container_process(ctr).pid
        for link, target in DEV_SYMLINKS.items():
            path = Path(f"/proc/{pid}/root{link}")
            assert path.is_symlink(), f"{link} in the created container is not a symlink"
            assert os.readlink(path) == target, f"{link} -> {os.readlink(path)}"
        out = finished(ctr)
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert seen == DEV_SYMLINKS, out


@pytest.mark.spec("config-linux.default-filesystems.1")
def test_dev_pts_shm_and_mqueue_are_mounted_as_configured(containers: ContainerFactory) -> None:
    result = containers.run(containers.spec(sh(PRINT_MOUNTINFO)))
    _, mounts = split_output(result.stdout)
    kinds = {}
    for point in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        entry = top_mount(mounts, point)
        assert entry is not None, f"nothing is mounted at {point}"
        kinds[point] = entry.fstype
        if point != "/dev":
            # The default config asks for nosuid, noexec on all three (defaults.py).
            assert {"nosuid", "noexec"} <= entry.options, f"{point}: {sorted(entry.options)}"
    assert kinds == {
        "/dev": "tmpfs",
        "/dev/pts": "devpts",
        "/dev/shm": "tmpfs",
        "/dev/mqueue": "mqueue",
    }


# --- linux.devices ------------------------------------------------------------------------------

# (type, path, major, minor, fileMode, uid, gid): one of each type; modes and owners no runtime
# would pick by itself (the default is 0666 root:root). Major 10 minor 229 is /dev/fuse, 7 is
# loop (devices.txt); nodes need no driver behind them to exist.
CONFIGURED = [
    Device(type="c", path="/dev/fuse", major=10, minor=229, file_mode=0o640, uid=1000, gid=1001),
    Device(type="b", path="/dev/bulkhead-blk", major=7, minor=250, file_mode=0o600, uid=0, gid=6),
    Device(type="u", path="/dev/bulkhead-u", major=10, minor=231, file_mode=0o604, uid=7, gid=0),
    Device(type="p", path="/dev/bulkhead-fifo", file_mode=0o620, uid=1002, gid=1003),
]
FILE_TYPE = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
PROBE_TYPE = {"c": "chr", "u": "chr", "b": "blk", "p": "fifo"}
# busybox stat(1): permissions in octal, owner uid, owner gid.
OWNER_EACH = 'for p in "$@"; do echo "$p owner=$(stat -c "%a:%u:%g" "$p")"; done'


def with_devices(spec: Spec, devices: list[Device]) -> Spec:
    assert spec.linux is not None
    spec.linux.devices = devices
    return spec


def without_dev_tmpfs(spec: Spec) -> Spec:
    """The container's /dev is then the rootfs' own directory (the overlay, seen from the host);
    /dev/pts and the rest still mount there."""
    assert spec.mounts is not None
    spec.mounts = [m for m in spec.mounts if m.destination != "/dev"]
    return spec


def expected(device: Device) -> tuple[int, tuple[int, int], int, int]:
    numbers = (0, 0) if device.type == "p" else (device.major or 0, device.minor or 0)
    return FILE_TYPE[device.type], numbers, device.file_mode or 0, device.uid or 0


def assert_node(st: os.stat_result, device: Device, where: str) -> None:
    kind, numbers, mode, uid = expected(device)
    assert stat.S_IFMT(st.st_mode) == kind, f"{device.path} {where}: mode {st.st_mode:o}"
    if device.type != "p":
        assert rdev(st) == numbers, f"{device.path} {where}: {rdev(st)}, not {numbers}"
    assert stat.S_IMODE(st.st_mode) == mode, f"{device.path} {where}: mode {st.st_mode:o}"
    assert (st.st_uid, st.st_gid) == (uid, device.gid or 0), f"{device.path} {where}: owner"


def script_for(devices: list[Device]) -> list[str]:
    return [*sh(f"{STAT_EACH}; {OWNER_EACH}"), "sh", *(d.path for d in devices)]


def assert_inside(out: str, devices: list[Device]) -> None:
    seen = probe_lines(out, [d.path for d in devices])
    owners = {line.split(" ")[0]: line.split("owner=")[1] for line in out.splitlines()
              if " owner=" in line}  # fmt: skip
    for d in devices:
        assert seen[d.path].get("type") == PROBE_TYPE[d.type], f"{d.path} inside: {seen[d.path]}"
        if d.type != "p":
            assert seen[d.path].get("rdev") == f"{d.major}:{d.minor}", f"{d.path}: {seen[d.path]}"
        assert owners.get(d.path) == f"{d.file_mode:o}:{d.uid}:{d.gid}", f"{d.path}: {owners}"


@pytest.mark.spec("config-linux.devices.1")
@pytest.mark.parametrize("device", CONFIGURED, ids=lambda d: f"type-{d.type}")
def test_a_configured_device_is_created_as_configured(
    containers: ContainerFactory, device: Device
) -> None:
    spec = with_devices(containers.spec(script_for([device])), [device])
    with containers.container(spec) as ctr:
        assert_node(host_view(ctr, device.path), device, "seen from the host")
        out = finished(ctr)
    assert_inside(out, [device])


@pytest.mark.spec("config-linux.devices.1")
def test_configured_devices_in_the_rootfs_dev_are_seen_from_the_host(
    containers: ContainerFactory,
) -> None:
    # Without a tmpfs on /dev the nodes land in the rootfs itself: the overlay upper directory
    # shows them to the host as the kernel made them.
    spec = with_devices(without_dev_tmpfs(containers.spec(script_for(CONFIGURED))), CONFIGURED)
    with containers.container(spec) as ctr:
        for device in CONFIGURED:
            assert_node(os.lstat(ctr.bundle.upper / device.path.lstrip("/")), device, "in upper")
        out = finished(ctr)
    assert_inside(out, CONFIGURED)


@pytest.mark.spec("config-linux.devices.5", "config-linux.devices.1")
def test_a_file_at_a_device_path_that_is_not_the_device_makes_create_fail(
    containers: ContainerFactory,
) -> None:
    device = Device(type="c", path="/dev/bulkhead-mydev", major=1, minor=3, file_mode=0o666)
    spec = with_devices(without_dev_tmpfs(containers.spec(script_for([device]))), [device])
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            # A regular file in the rootfs where the device is to go (config-linux.md
            # "Devices": "If a file already exists at path that does not match the requested
            # device, the runtime MUST generate an error").
            # Written through the mounted overlay (never into its upper directory beneath it,
            # which overlayfs does not expect to change while mounted).
            occupant = bundle.rootfs / device.path.lstrip("/")
            occupant.parent.mkdir(parents=True, exist_ok=True)
            occupant.write_text("not a device\n")
            since = boot_seconds()
            expect_refusal(ctr.create(check=False), "create over a regular file at the path")
            assert_nothing_created(
                containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
            )
            assert occupant.is_file() and occupant.read_text() == "not a device\n", (
                "the refused create replaced the file at the device path"
            )
            # Control: with the path free, the same bundle is created and gets its device.
            occupant.unlink()
            expect_success(ctr.create(check=False), "create with the device path free")
            assert_node(os.lstat(occupant), device, "in upper")
        finally:
            ctr.close_stdio()
