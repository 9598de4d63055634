"""podman over the reference runtime (and runc, the control): `run --rm`, and a detached
container driven through exec, stop and rm, from an image `podman import`ed from the suite's
busybox rootfs. No registry is reached; podman's state lives under a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _client_support import remove_cgroup_tree

from bulkhead.rootfs import build_rootfs

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman is not installed (apt-get install podman)"
)
IMAGE = "localhost/bulkhead-busybox:test"
# This machine has no CAP_SYS_RESOURCE, so podman's default rlimits (raised to the hard maximum)
# cannot be applied; nor may a test touch the machine's network namespace: no network.
RUN_OPTIONS = (
    "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
)  # fmt: skip


@dataclass
class Podman:
    base: list[str]
    cgroup_parent: str

    def __call__(
        self, runtime: str, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.base, "--runtime", runtime, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        return done

    def run_options(self) -> tuple[str, ...]:
        return (*RUN_OPTIONS, "--cgroup-parent", f"/{self.cgroup_parent}")


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    # podman refuses a runroot longer than 50 characters: pytest's tmp_path is too deep.
    home = Path(tempfile.mkdtemp(prefix="bh-podman-", dir="/tmp"))
    base = [
        "podman", "--root", str(home / "root"), "--runroot", str(home / "run"),
        "--tmpdir", str(home / "tmp"), "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
    ]  # fmt: skip
    client = Podman(base, f"bulkhead-podman-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    tarball = home / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(build_rootfs().path, arcname=".")
    imported = subprocess.run(
        [*base, "import", str(tarball), IMAGE], capture_output=True, text=True
    )
    assert imported.returncode == 0, f"podman import failed: {imported.stderr}"
    try:
        yield client
    finally:
        subprocess.run([*base, "rm", "--all", "--force", "--time", "0"], capture_output=True)
        subprocess.run([*base, "system", "reset", "--force"], capture_output=True)
        remove_cgroup_tree(client.cgroup_parent)
        mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines()
                  if str(home) in line]  # fmt: skip
        assert not mounts, f"podman left mounts behind: {mounts}"
        shutil.rmtree(home)


def test_podman_run_rm(podman: Podman, runtime: str) -> None:
    done = podman(
        runtime, "run", "--rm", *podman.run_options(), IMAGE,
        "sh", "-c", "echo pid $$; cat /proc/self/cgroup >/dev/null; hostname",
    )  # fmt: skip
    lines = done.stdout.split()
    # PID 1 in the container's own pid namespace, and the hostname podman chose (its id).
    assert lines[:2] == ["pid", "1"], done.stdout
    assert lines[2] != os.uname().nodename
    listed = podman(runtime, "ps", "--all", "--quiet").stdout.split()
    assert listed == [], f"run --rm left containers: {listed}"


def test_podman_detached_exec_stop_rm(podman: Podman, runtime: str) -> None:
    name = f"bh-{uuid.uuid4().hex[:8]}"
    podman(
        runtime, "run", "-d", "--name", name, *podman.run_options(), IMAGE,
        "sh", "-c", "trap 'exit 7' TERM; echo up >/tmp/up; sleep 1000 & wait",
    )  # fmt: skip
    try:
        state = podman(runtime, "inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        assert state == "running"
        seen = podman(runtime, "exec", name, "sh", "-c", "cat /tmp/up; echo $$").stdout.split()
        # The exec'd shell sees the container's files and lives in its pid namespace (not 1).
        assert seen[0] == "up" and seen[1] != "1", seen
        podman(runtime, "stop", "--time", "10", name)
        status, code = podman(
            runtime, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name
        ).stdout.split()
        # The trap's status reached podman through the runtime and conmon.
        assert (status, code) == ("exited", "7")
    finally:
        podman(runtime, "rm", "--force", name, check=False)
    assert name not in podman(runtime, "ps", "--all", "--format", "{{.Names}}").stdout.split()
