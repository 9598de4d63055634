"""The host-side process witnesses of bulkhead.hostview, against a fake /proc in tmp_path (and,
where the kernel itself is the point, against processes this test starts and ends itself).

Fake pids are above the kernel's PID_MAX_LIMIT, so they can never name a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bulkhead import hostview
from bulkhead.hostview import ProcessRef

# PID_MAX_LIMIT is 2**22 on 64-bit Linux (<linux/threads.h>): no process can have these ids.
NOT_A_PID = 2**22 + 100


def fake_process(
    proc: Path,
    pid: int,
    *,
    state: str = "S",
    start: int = 4242,
    comm: str = "sh",
    mnt: str = "mnt:[4026531841]",
    mountinfo: str = "",
    argv: tuple[str, ...] = ("sh", "-c", "true"),
    cgroup: str = "",
) -> None:
    d = proc / str(pid)
    (d / "ns").mkdir(parents=True, exist_ok=True)
    # Fields 3..52 after "pid (comm)": state, then 16 fields, then starttime as field 22.
    rest = [state] + ["0"] * 18 + [str(start)] + ["0"] * 30
    (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(rest) + "\n")
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    (d / "mountinfo").write_text(mountinfo)
    (d / "cgroup").write_text(cgroup)
    link = d / "ns" / "mnt"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(mnt)


def overlay_root(upper: str) -> str:
    return (
        "600 500 0:77 / / rw,relatime - overlay overlay "
        f"rw,lowerdir=/var/cache/bulkhead/image,upperdir={upper},workdir={upper}/../work\n"
        "601 600 0:5 / /proc rw - proc proc rw\n"
    )


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    fake_process(root, 1, mnt="mnt:[4026531840]")  # the reader's namespace, via "self"
    (root / "self").symlink_to("1")
    return root


def test_process_ref_reads_field_22_even_with_odd_comm(proc: Path) -> None:
    # comm may hold spaces and ")" (it is the program's name, chosen by whoever ran it).
    fake_process(proc, NOT_A_PID, start=987654, comm="a ) b (c")
    assert hostview.process_ref(NOT_A_PID, proc) == ProcessRef(NOT_A_PID, 987654)


def test_process_ref_of_a_missing_pid_raises(proc: Path) -> None:
    with pytest.raises(ProcessLookupError):
        hostview.process_ref(NOT_A_PID, proc)


@pytest.mark.parametrize(
    ("state", "start", "status", "alive"),
    [
        ("S", 4242, "S", True),
        ("R", 4242, "R", True),
        ("D", 4242, "D", True),
        ("T", 4242, "T", True),
        ("Z", 4242, "Z", False),  # exited, waiting to be reaped
        ("X", 4242, "X", False),  # dead
        ("S", 5000, "reused", False),  # same pid, another process
    ],
)
def test_status_and_liveness(proc: Path, state: str, start: int, status: str, alive: bool) -> None:
    ref = ProcessRef(NOT_A_PID, 4242)
    fake_process(proc, NOT_A_PID, state=state, start=start)
    assert hostview.process_status(ref, proc) == status
    assert hostview.is_alive(ref, proc) is alive


def test_a_gone_process_is_not_alive(proc: Path) -> None:
    ref = ProcessRef(NOT_A_PID, 4242)
    assert hostview.process_status(ref, proc) == "gone"
    assert not hostview.is_alive(ref, proc)


def test_cmdline_and_cgroup_paths(proc: Path) -> None:
    fake_process(
        proc,
        NOT_A_PID,
        argv=("sh", "-c", "touch /ready; sleep 1000 & wait"),
        cgroup="12:pids:/bh-1\n0::/bh-1\n3:cpu,cpuacct:/a:b\n",
    )
    assert hostview.cmdline(NOT_A_PID, proc) == ["sh", "-c", "touch /ready; sleep 1000 & wait"]
    assert hostview.cgroup_paths(NOT_A_PID, proc) == ["/bh-1", "/bh-1", "/a:b"]
    assert hostview.cmdline(NOT_A_PID + 1, proc) == []
    assert hostview.cgroup_paths(NOT_A_PID + 1, proc) == []


def test_processes_rooted_in_finds_only_those_whose_root_is_the_bundle(proc: Path) -> None:
    upper = "/tmp/w/bundles/bh-1/overlay/upper"
    fake_process(proc, NOT_A_PID, mnt="mnt:[1]", mountinfo=overlay_root(upper))
    # Another bundle whose upper path starts with ours: a prefix is not a match.
    fake_process(proc, NOT_A_PID + 1, mnt="mnt:[2]", mountinfo=overlay_root(upper + "2"))
    # Ours mounted, but not as its root (a process that has not pivoted into it).
    not_root = overlay_root(upper).replace(" / / ", " / /mnt/x ", 1)
    fake_process(proc, NOT_A_PID + 2, mnt="mnt:[3]", mountinfo=not_root)
    # In the reader's own namespace: skipped unread, whatever its mountinfo says.
    fake_process(proc, NOT_A_PID + 3, mnt="mnt:[4026531840]", mountinfo=overlay_root(upper))
    assert hostview.processes_rooted_in(Path(upper), proc) == [NOT_A_PID]
    assert hostview.is_rooted_in(NOT_A_PID, Path(upper), proc)
    assert not hostview.is_rooted_in(NOT_A_PID + 2, Path(upper), proc)
    assert not hostview.is_rooted_in(NOT_A_PID + 9, Path(upper), proc)


def test_start_seconds_uses_the_clock_tick() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    assert hostview.start_seconds(ProcessRef(1, 3 * ticks)) == 3.0


def test_a_real_process_from_start_to_reaped() -> None:
    # The kernel's own /proc: a child of ours, alive, then a zombie, then gone.
    child = subprocess.Popen(["sleep", "30"])
    try:
        ref = hostview.process_ref(child.pid)
        assert hostview.is_alive(ref)
        before = time.clock_gettime(time.CLOCK_BOOTTIME)
        assert hostview.start_seconds(ref) <= before
        assert hostview.signal_process(ref, signal.SIGKILL)
        # Not reaped yet: a zombie, which has ended.
        deadline = time.monotonic() + 5
        while hostview.process_status(ref) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hostview.process_status(ref) == "Z"
        assert not hostview.is_alive(ref)
    finally:
        child.kill()
        child.wait()
    assert hostview.process_status(ref) in ("gone", "reused")
    assert not hostview.signal_process(ref, signal.SIGKILL)


def test_signal_process_refuses_a_reused_pid() -> None:
    # A reference with the right pid but another start time names a process that is gone:
    # the live process now holding the pid must not get the signal.
    child = subprocess.Popen(["sleep", "30"])
    try:
        real = hostview.process_ref(child.pid)
        stale = ProcessRef(child.pid, real.start_time - 1)
        assert hostview.process_status(stale) == "reused"
        assert not hostview.signal_process(stale, signal.SIGKILL)
        assert child.poll() is None, "the signal reached the process now holding the pid"
    finally:
        child.kill()
        child.wait()
