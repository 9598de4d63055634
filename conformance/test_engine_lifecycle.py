"""A container's life through the engine's verbs, judged by the host: run -d, ps, logs -f, exec,
stop (SIGTERM first; the exit recorded in inspect), kill, and rm, after which no mount, veth,
network namespace file, cgroup, process or published-port proxy of it is left (each seen while
it ran, the control). A foreground run exits with the container's status; --rm leaves nothing.
inspect's State.Pid is the container's init as the kernel shows it: its own namespaces, its root
the overlay, PID 1 inside; --memory and --pids-limit are the cgroupfs values of that process.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from bulkhead.containers import poll
from bulkhead.hostview import NAMESPACE_FILES, cgroup_paths, nspid
from conformance._engine import (
    BUSYBOX,
    IDLE,
    Engine,
    LineReader,
    cgroup_roots,
    ended,
    free_port,
    idle,
    listening_on,
    mounts_under,
    parent_of,
    processes_naming,
    ref_of,
    sh,
    wait_for_file,
    wait_gone,
)
from conformance._mounts import host_mounts

pytest_plugins = ("conformance._engine_fixtures",)
pytestmark = pytest.mark.engine

BRIDGE = "bh0"
# Namespaces a docker container gets of its own (the cgroup one only on a cgroup v2 host).
OWN_NAMESPACES = ("pid", "mount", "network", "uts", "ipc")


def cgroup_dirs_of(pid: int) -> list[Path]:
    """The cgroup directory of ``pid`` in every hierarchy, on the host."""
    found = []
    paths = cgroup_paths(pid)
    for root in cgroup_roots():
        for path in paths:
            candidate = root / path.lstrip("/")
            if path not in ("/", "") and candidate.is_dir() and candidate not in found:
                found.append(candidate)
    return found


def controller_file(pid: int, controller: str, v1_file: str, v2_file: str) -> Path:
    """The cgroupfs file of ``controller`` for ``pid``: in the v1 hierarchy of that controller,
    else in the unified one where it is enabled."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for mount in host_mounts():
        if mount.fstype == "cgroup" and controller in mount.super_options:
            for line in lines:
                _, names, path = line.split(":", 2)
                if controller in names.split(","):
                    return Path(mount.point) / path.lstrip("/") / v1_file
    for mount in host_mounts():
        if mount.fstype == "cgroup2":
            path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
            return Path(mount.point) / path.lstrip("/") / v2_file
    raise AssertionError(f"no cgroup hierarchy holds the {controller} controller")


def test_a_detached_container_from_run_to_rm(engine: Engine) -> None:
    name = f"life-{secrets.token_hex(3)}"
    port = free_port()
    veths = len([link for link in engine.engine_links() if link.master == BRIDGE])
    cid = engine.run_detached("--name", name, "-p", f"127.0.0.1:{port}:80", BUSYBOX,
                              *sh("echo started; " + IDLE))  # fmt: skip
    info = engine.inspect(name)
    # docker's inspect names the container "Id" (config.v2.json on disk says "ID").
    assert info.get("Id") == cid and info.get("Name") == f"/{name}"
    wait_for_file(info.upper / "ready")
    assert info.running and info.get("State", "Status") == "running"
    listed = engine("ps").stdout
    assert cid[:12] in listed and name in listed, f"ps: {listed}"

    # While it runs, the host sees all that rm must remove: the control for each check below.
    pid = info.pid
    init = ref_of(pid)
    monitor = ref_of(parent_of(pid))  # it reaps the container's exit (containerd-shim's role)
    assert not ended(monitor) and monitor.pid != os.getpid()
    cgroups = cgroup_dirs_of(pid)
    assert cgroups, f"pid {pid} is in no cgroup of the host"
    netns = engine.netns(cid)
    assert netns.exists() and mounts_under(info.merged), "no netns file or rootfs mount"
    assert len([link for link in engine.engine_links() if link.master == BRIDGE]) == veths + 1
    assert listening_on(port), f"the proxy of 127.0.0.1:{port} does not listen"

    follow = LineReader(engine.popen("logs", "-f", name))
    try:
        assert follow.next() == "started\n"
        # exec runs in the container: its output, its exit status, and its writes to PID 1's
        # stdout reaching the log that logs -f is following.
        assert engine("exec", name, "cat", "/etc/hostname").stdout == f"{cid[:12]}\n"
        assert engine("exec", name, *sh("exit 3"), check=False).returncode == 3
        engine("exec", name, *sh("echo via-exec >/proc/1/fd/1"))
        assert follow.next() == "via-exec\n"

        started = time.monotonic()
        engine("stop", "-t", "10", name)
        assert time.monotonic() - started < 8, "stop waited for the grace period: no SIGTERM?"
        assert follow.next() == "got-TERM\n"
        assert follow.next() == "", "logs -f printed more after the container ended"
        follow.proc.wait(timeout=10)  # logs -f ends with the container
    finally:
        follow.close()
    stopped = engine.inspect(cid)
    assert stopped.get("State", "Status") == "exited" and not stopped.running
    assert stopped.exit_code in (143, 137), f"State.ExitCode {stopped.exit_code}"
    wait_gone([init])
    assert cid[:12] not in engine("ps", "-q").stdout.split()
    assert cid[:12] in engine("ps", "-a", "-q").stdout.split()

    engine("rm", name)
    problems = []
    if mounts_under(info.merged.parent) or mounts_under(engine.container_dir(cid)):
        problems.append("mounts")
    if netns.exists() or engine.container_dir(cid).exists():
        problems.append("netns file or container dir")
    if len([link for link in engine.engine_links() if link.master == BRIDGE]) != veths:
        problems.append("veth")
    problems += [f"cgroup {d}" for d in cgroups if d.exists()]
    if listening_on(port):
        problems.append(f"proxy on 127.0.0.1:{port}")
    problems += [f"process {p}" for p in processes_naming(cid)]
    assert not problems, "rm left behind: " + ", ".join(problems)
    wait_gone([monitor])


@pytest.mark.spec("runtime.kill.4")
def test_kill_delivers_the_signal_and_the_death_is_recorded(engine: Engine) -> None:
    info = idle(engine, "--network", "none", script="trap 'echo got-USR1' USR1; " + IDLE)
    init = ref_of(info.pid)
    engine("kill", "-s", "USR1", info.id)
    poll(lambda: True if "got-USR1" in engine("logs", info.id).stdout else None,
         what="the USR1 handler's line in the log")  # fmt: skip
    assert engine.inspect(info.id).running and not ended(init), "USR1 ended the container"
    engine("kill", info.id)  # docker's default: SIGKILL
    killed = poll(lambda: (i := engine.inspect(info.id)) and (None if i.running else i),
                  what="the container to be recorded as exited")  # fmt: skip
    assert killed.exit_code == 137, f"State.ExitCode after SIGKILL: {killed.exit_code}"
    wait_gone([init])


def test_a_foreground_run_exits_with_the_containers_status(engine: Engine) -> None:
    name = f"fg-{secrets.token_hex(3)}"
    kept = engine("run", "--name", name, "--network", "none", BUSYBOX, *sh("echo hi; exit 7"),
                  check=False)  # fmt: skip
    assert (kept.returncode, kept.stdout) == (7, "hi\n"), kept
    info = engine.inspect(name)
    assert info.exit_code == 7 and info.get("State", "Status") == "exited"
    # The control for --rm: without it, the record stays.
    (cid,) = engine.container_dirs()
    before = engine.snapshot()
    gone = engine("run", "--rm", "--network", "none", BUSYBOX, *sh("echo bye; exit 5"),
                  check=False)  # fmt: skip
    assert (gone.returncode, gone.stdout) == (5, "bye\n"), gone
    assert engine.snapshot() == before, "run --rm left files: " + ", ".join(
        sorted(engine.snapshot() ^ before)
    )
    assert engine("ps", "-a", "-q").stdout.split() == [cid[:12]]


@pytest.mark.spec("config-linux.memory.apply-memory-limit", "config-linux.pids.apply-pids-limit")
def test_inspect_pid_and_limits_are_what_the_kernel_shows(engine: Engine) -> None:
    info = idle(engine, "--memory", "64m", "--pids-limit", "50", "--network", "none")
    pid = info.pid
    # State.Pid is the container's init: PID 1 of its own pid namespace, its root the overlay,
    # its namespaces its own (each differs from this process's, the host's).
    assert nspid(pid)[-1] == 1, f"pid {pid} is {nspid(pid)} in its namespaces"
    root, merged = os.stat(f"/proc/{pid}/root"), os.stat(info.merged)
    assert (root.st_dev, root.st_ino) == (merged.st_dev, merged.st_ino), "its root is not MergedDir"
    for kind in OWN_NAMESPACES:
        ns = NAMESPACE_FILES[kind]
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), kind
    host_config = info.get("HostConfig")
    assert (host_config["Memory"], host_config["PidsLimit"]) == (64 * 1024 * 1024, 50)
    memory = controller_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    pids = controller_file(pid, "pids", "pids.max", "pids.max")
    assert memory.read_text().strip() == str(64 * 1024 * 1024), f"{memory}"
    assert pids.read_text().strip() == "50", f"{pids}"
    # Both under the engine's --cgroup-parent.
    parent = engine.cgroup_parent.strip("/")
    assert all(parent in p for p in (str(memory), str(pids))), (memory, pids)
