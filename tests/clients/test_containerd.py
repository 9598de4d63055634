"""containerd over the reference runtime (and runc, the control): `ctr run --rm --rootfs`, and a
detached task killed and deleted. The test starts its own containerd with root, state and
sockets under a temporary directory, and ends it by the pid it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _client_support import remove_cgroup_tree

from bulkhead.rootfs import build_rootfs

pytestmark = pytest.mark.skipif(
    shutil.which("containerd") is None or shutil.which("ctr") is None,
    reason="containerd is not installed (apt-get install containerd)",
)
# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its config says.
SHIM_SOCKETS = Path("/run/containerd")
# Plugins that would reach beyond the test's directory (CRI's networking) or need what this
# machine lacks (other snapshotters).
DISABLED = [
    "io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.opt",
]  # fmt: skip


@dataclass
class Containerd:
    home: Path
    socket: Path
    cgroup_parent: str

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.socket), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        return done

    def run_options(self, runtime: str) -> list[str]:
        """`ctr run` options: this runtime, its state under our directory (the shim hands it
        to the runtime as --root), FIFOs there too, a PATH (with --rootfs, no image gives one),
        and a private copy of the rootfs (the option that must come last)."""
        return [
            "--env", "PATH=/bin:/sbin", "--cgroup", f"/{self.cgroup_parent}/{uuid.uuid4().hex[:8]}",
            "--runc-binary", runtime, "--runc-root", str(self.home / "runc-root"),
            "--fifo-dir", str(self.home / "fifo"), "--rootfs",
        ]  # fmt: skip

    def rootfs(self) -> Path:
        target = self.home / f"rootfs-{uuid.uuid4().hex[:8]}"
        shutil.copytree(build_rootfs().path, target, symlinks=True)
        return target

    def task_status(self, cid: str) -> str | None:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return None


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    home = tmp_path_factory.mktemp("containerd")
    socket = home / "containerd.sock"
    disabled = ", ".join(f'"{p}"' for p in DISABLED)
    config = home / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{home}/root"\nstate = "{home}/state"\n'
        f"disabled_plugins = [{disabled}]\n"
        f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
        '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
    )
    had_run_dir = SHIM_SOCKETS.exists()
    client: Containerd | None = None
    log = (home / "containerd.log").open("w")
    daemon = subprocess.Popen(
        ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while not socket.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "containerd did not start: " + (home / "containerd.log").read_text()[-2000:]
                )
            time.sleep(0.05)
        # ctr's default cgroup is /<namespace>/<id>: a parent of our own, removed below.
        client = Containerd(home, socket, f"bulkhead-ctr-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        yield client
    finally:
        daemon.send_signal(signal.SIGTERM)  # the daemon we started, by its pid
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        if client is not None:
            remove_cgroup_tree(client.cgroup_parent)
        if not had_run_dir:
            shutil.rmtree(SHIM_SOCKETS, ignore_errors=True)
        mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines()
                  if str(home) in line]  # fmt: skip
        assert not mounts, f"containerd left mounts behind: {mounts}"


def test_ctr_run_rm(containerd: Containerd, runtime: str) -> None:
    cid = f"bh-{uuid.uuid4().hex[:8]}"
    rootfs = containerd.rootfs()
    done = containerd.ctr(
        "run", "--rm", *containerd.run_options(runtime), str(rootfs), cid,
        "sh", "-c", "echo pid $$; echo out >/written",
    )  # fmt: skip
    assert done.stdout.split() == ["pid", "1"], done.stdout
    # The process wrote into the rootfs it was given, and --rm left no container behind.
    assert (rootfs / "written").read_text() == "out\n"
    assert cid not in containerd.ctr("containers", "ls", "--quiet").stdout.split()


def test_ctr_detached_task_killed_and_deleted(containerd: Containerd, runtime: str) -> None:
    cid = f"bh-{uuid.uuid4().hex[:8]}"
    rootfs = containerd.rootfs()
    containerd.ctr(
        "run", "-d", *containerd.run_options(runtime), str(rootfs), cid,
        "sh", "-c", "trap 'exit 3' TERM; touch /up; sleep 1000 & wait",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (rootfs / "up").exists():
            assert time.monotonic() < deadline, "the detached task never ran"
            time.sleep(0.05)
        assert containerd.task_status(cid) == "RUNNING"
        # The shim called the runtime with our --root: its state for the task is there.
        assert (containerd.home / "runc-root" / "default" / cid).exists()
        containerd.ctr("task", "kill", "--signal", "SIGTERM", cid)
        deadline = time.monotonic() + 20
        while containerd.task_status(cid) != "STOPPED":
            assert time.monotonic() < deadline, f"task {cid} did not stop after SIGTERM"
            time.sleep(0.1)
        containerd.ctr("task", "delete", cid)
        assert containerd.task_status(cid) is None
        assert not (containerd.home / "runc-root" / "default" / cid).exists()
    finally:
        containerd.ctr("task", "delete", "--force", cid, check=False)
        containerd.ctr("containers", "delete", cid, check=False)
    assert cid not in containerd.ctr("containers", "ls", "--quiet").stdout.split()
    assert os.path.exists(rootfs)  # a rootfs given with --rootfs is the caller's to keep
