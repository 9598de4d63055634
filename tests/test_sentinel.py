"""The leak sentinel against a fake /proc, /sys, netns directory and runtime root in tmp_path.

Nothing here touches the machine: cgroup hierarchies are plain directories whose mount points
the fake mountinfo names, process ids are above the kernel's PID_MAX_LIMIT (so they can never
be a real process), and os.kill, umount and ``ip`` are replaced by recorders in the clean tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead import _sys, ipckeys
from bulkhead.sentinel import Leak, Sentinel

TOKEN = "bh-c0ffee-"
# PID_MAX_LIMIT is 2**22 on 64-bit Linux (<linux/threads.h>): no process can have these ids.
NOT_A_PID = 2**22 + 100


class FakeHost:
    """The trees a Sentinel reads, with helpers to add what a test would leave behind."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc = base / "proc"
        self.sysfs = base / "sys"
        self.netns = base / "netns"
        self.state = base / "state"
        self.work = base / "work"  # the session's own directory (a sentinel root)
        self.cgroup = base / "cgroup"
        for d in (self.proc / "self", self.sysfs / "class" / "net", self.netns, self.state):
            d.mkdir(parents=True)
        self.mqueues: list[str] = []  # what the fake mqueue listing returns
        self.mountinfo: list[str] = []
        self.add_mount("/", fstype="ext4", source="/dev/vda1")
        self.add_mount(str(self.cgroup), fstype="tmpfs", source="tmpfs", options="rw,mode=755")
        for name in ("memory", "pids"):
            self.add_mount(str(self.cgroup / name), "cgroup", "cgroup", f"rw,{name}")
            (self.cgroup / name).mkdir(parents=True)
        self.add_mount(str(self.cgroup / "unified"), "cgroup2", "cgroup2", "rw")
        (self.cgroup / "unified").mkdir()

    def sentinel(self) -> Sentinel:
        return Sentinel(
            TOKEN,
            [self.work],
            runtime_root=self.state,
            proc=self.proc,
            sysfs=self.sysfs,
            netns_dir=self.netns,
            mqueues=lambda: list(self.mqueues),
        )

    def set_uts(self, hostname: str, domainname: str = "(none)") -> None:
        kernel = self.proc / "sys" / "kernel"
        kernel.mkdir(parents=True, exist_ok=True)
        (kernel / "hostname").write_text(hostname + "\n")
        (kernel / "domainname").write_text(domainname + "\n")

    def uts(self, name: str) -> str:
        return (self.proc / "sys" / "kernel" / name).read_text()

    def add_sysv(self, kind: str, key: int, ident: int) -> None:
        # proc(5): a header line, then one row per object starting "key id perms ...".
        table = self.proc / "sysvipc" / kind
        table.parent.mkdir(exist_ok=True)
        if not table.exists():
            table.write_text("       key      shmid perms    size  cpid  lpid nattch\n")
        with table.open("a") as f:
            f.write(f"{key:>10} {ident:>10}   600   4096  1  1  0\n")

    def add_mount(
        self, point: str, fstype: str = "overlay", source: str = "overlay", options: str = "rw"
    ) -> None:
        n = 100 + len(self.mountinfo)
        self.mountinfo.append(f"{n} 1 0:{n} / {point} rw,relatime - {fstype} {source} {options}")
        (self.proc / "self" / "mountinfo").write_text("\n".join(self.mountinfo) + "\n")

    def add_process(
        self,
        pid: int,
        cmdline: list[str],
        *,
        cgroup: str = "0::/user.slice\n",
        state: str = "S",
        ppid: int = 1,
        start: int = 1000,
        comm: str = "sh",
    ) -> None:
        d = self.proc / str(pid)
        d.mkdir()
        (d / "cmdline").write_text("\0".join(cmdline) + "\0")
        (d / "cgroup").write_text(cgroup)
        self.set_stat(pid, state=state, ppid=ppid, start=start, comm=comm)

    def set_stat(
        self, pid: int, *, state: str = "S", ppid: int = 1, start: int = 1000, comm: str = "sh"
    ) -> None:
        # proc(5): "pid (comm) state ppid ..." with starttime as field 22; 17 fields lie
        # between ppid and starttime.
        rest = " ".join(["0"] * 17)
        line = f"{pid} ({comm}) {state} {ppid} {rest} {start} 0 0 0 0 0 0 0 0 0 0\n"
        (self.proc / str(pid) / "stat").write_text(line)

    def add_cgroup(self, relative: str) -> Path:
        path = self.cgroup / relative
        path.mkdir(parents=True)
        return path

    def add_state(self, name: str) -> Path:
        path = self.state / name
        path.mkdir()
        return path


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def process_leak(pid: int, cmdline: str, start: int = 1000) -> Leak:
    return Leak("process", f"pid {pid}: {cmdline}", f"{pid}:{start}")


# --- what is found ------------------------------------------------------------------------------


def test_snapshot_finds_what_carries_the_token_or_lies_under_a_root(host: FakeHost) -> None:
    host.add_mount(f"/run/bulkhead/{TOKEN}1/rootfs")
    host.add_mount("/mnt/x", options=f"rw,lowerdir={host.work}/image,upperdir=/u,workdir=/w")
    host.add_process(NOT_A_PID, ["runc", "init", f"{TOKEN}1"], start=11)
    host.add_process(NOT_A_PID + 1, ["sleep", "1000"], cgroup=f"0::/{TOKEN}2\n", start=12)
    host.add_process(NOT_A_PID + 2, ["cat", f"{host.work}/bundles/x/config.json"], start=13)
    memory = host.add_cgroup(f"memory/{TOKEN}1")
    nested = host.add_cgroup(f"pids/machine.slice/{TOKEN}2")
    unified = host.add_cgroup(f"unified/{TOKEN}3")
    (host.sysfs / "class" / "net" / f"veth{TOKEN}1").mkdir()
    (host.netns / f"{TOKEN}ns").touch()
    host.add_state(f"{TOKEN}1")

    assert host.sentinel().snapshot() == {
        Leak("mount", f"/run/bulkhead/{TOKEN}1/rootfs"),
        Leak("mount", "/mnt/x"),
        process_leak(NOT_A_PID, f"runc init {TOKEN}1", 11),
        process_leak(NOT_A_PID + 1, "sleep 1000", 12),
        process_leak(NOT_A_PID + 2, f"cat {host.work}/bundles/x/config.json", 13),
        Leak("cgroup", str(memory)),
        Leak("cgroup", str(nested)),
        Leak("cgroup", str(unified)),
        Leak("netdev", f"veth{TOKEN}1"),
        Leak("netns", str(host.netns / f"{TOKEN}ns")),
        Leak("state", f"{TOKEN}1"),
    }


def test_snapshot_ignores_what_belongs_to_someone_else(host: FakeHost) -> None:
    other = "bh-beef00-1"  # another session's (or xdist worker's) token
    host.add_mount("/var/lib/docker/overlay2/abc/merged")
    host.add_mount(f"/run/bulkhead/{other}/rootfs")
    host.add_process(NOT_A_PID, ["runc", "init", other], cgroup=f"0::/{other}\n")
    host.add_process(NOT_A_PID + 1, ["sshd"])
    host.add_cgroup(f"memory/{other}")
    host.add_cgroup("memory/docker/abc")
    host.add_cgroup("unified/system.slice/ssh.service")
    (host.sysfs / "class" / "net" / "eth0").mkdir()
    (host.netns / "ns1").touch()
    host.add_state(other)
    (host.state / f"{TOKEN}not-a-directory").touch()

    assert host.sentinel().snapshot() == frozenset()


def test_the_test_process_itself_is_never_a_leak(host: FakeHost) -> None:
    host.add_process(os.getpid(), ["pytest", TOKEN], ppid=os.getppid())
    assert host.sentinel().snapshot() == frozenset()


def test_a_process_name_with_parentheses_does_not_confuse_the_stat_parser(
    host: FakeHost,
) -> None:
    host.add_process(NOT_A_PID, [TOKEN], comm="a) Z 1 (b", start=77)
    assert host.sentinel().snapshot() == {process_leak(NOT_A_PID, TOKEN, 77)}


def test_a_zombie_waiting_for_another_parent_is_not_a_leak(host: FakeHost) -> None:
    host.add_process(NOT_A_PID, [TOKEN], state="Z", ppid=1)
    assert host.sentinel().snapshot() == frozenset()


def test_a_zombie_of_the_test_process_is_a_leak(host: FakeHost) -> None:
    host.add_process(NOT_A_PID, [TOKEN], state="Z", ppid=os.getpid(), start=5)
    assert host.sentinel().snapshot() == {process_leak(NOT_A_PID, TOKEN, 5)}


def test_a_cgroup_under_our_cgroup_is_reported_once_as_the_top(host: FakeHost) -> None:
    top = host.add_cgroup(f"memory/{TOKEN}1")
    host.add_cgroup(f"memory/{TOKEN}1/{TOKEN}inner")
    assert host.sentinel().snapshot() == {Leak("cgroup", str(top))}


def test_a_root_does_not_claim_a_sibling_whose_name_merely_starts_with_it(
    host: FakeHost,
) -> None:
    # With --runtime-root R the suite's runtime root is R/<worker>; worker gw1 must not take
    # gw10's runtime call for its own leak (clean() would then SIGKILL it).
    gw1 = Sentinel(
        TOKEN, [host.base / "R" / "gw1"], runtime_root=host.state, proc=host.proc,
        sysfs=host.sysfs, netns_dir=host.netns,
    )  # fmt: skip
    host.add_process(NOT_A_PID, ["runc", "--root", f"{host.base}/R/gw10", "state", "bh-x-1"])
    assert gw1.snapshot() == frozenset()


# --- what is new ------------------------------------------------------------------------------


def test_leaks_are_only_what_appeared_since_before(host: FakeHost) -> None:
    host.add_state(f"{TOKEN}old")
    host.add_cgroup(f"memory/{TOKEN}old")
    sentinel = host.sentinel()
    before = sentinel.snapshot()
    assert len(before) == 2

    host.add_state(f"{TOKEN}new")
    new_cgroup = host.add_cgroup(f"pids/{TOKEN}new")

    assert sentinel.leaks(before, settle=0) == [
        Leak("cgroup", str(new_cgroup)),
        Leak("state", f"{TOKEN}new"),
    ]


def test_nothing_new_is_no_leak(host: FakeHost) -> None:
    host.add_state(f"{TOKEN}old")
    sentinel = host.sentinel()
    assert sentinel.leaks(sentinel.snapshot(), settle=0) == []


@pytest.fixture
def timers() -> Iterator[list[threading.Timer]]:
    started: list[threading.Timer] = []
    yield started
    for timer in started:
        timer.cancel()
        timer.join()


def test_a_leak_that_goes_away_within_the_settle_time_does_not_count(
    host: FakeHost, timers: list[threading.Timer]
) -> None:
    sentinel = host.sentinel()
    before = sentinel.snapshot()
    exiting = host.add_state(f"{TOKEN}exiting")
    timers.append(threading.Timer(0.05, exiting.rmdir))
    timers[-1].start()

    began = time.monotonic()
    assert sentinel.leaks(before, settle=5.0) == []
    assert time.monotonic() - began < 4.0  # returned once it was gone, not at the deadline


def test_a_leak_that_stays_is_reported_after_the_settle_time(host: FakeHost) -> None:
    sentinel = host.sentinel()
    before = sentinel.snapshot()
    host.add_state(f"{TOKEN}stuck")

    began = time.monotonic()
    assert sentinel.leaks(before, settle=0.1) == [Leak("state", f"{TOKEN}stuck")]
    assert time.monotonic() - began >= 0.1


# --- cleaning up ----------------------------------------------------------------------------------


class Recorder:
    """Stands in for os.kill, umount, subprocess.run and delete_state; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.failing: dict[str, Exception] = {}

    def __call__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args))
            if name in self.failing:
                raise self.failing[name]

        return record


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(os, "kill", rec("kill"))
    monkeypatch.setattr(_sys, "umount", rec("umount"))
    monkeypatch.setattr(subprocess, "run", rec("run"))
    return rec


def test_clean_deletes_state_through_the_callback(host: FakeHost, recorder: Recorder) -> None:
    problems = host.sentinel().clean([Leak("state", f"{TOKEN}1")], recorder("delete_state"))
    assert problems == []
    assert recorder.calls == [("delete_state", (f"{TOKEN}1",))]


def test_clean_removes_a_cgroup_tree_bottom_up(host: FakeHost, recorder: Recorder) -> None:
    top = host.add_cgroup(f"memory/{TOKEN}1")
    for child in ("a/b/c", "a/d", "e"):
        (top / child).mkdir(parents=True)

    assert host.sentinel().clean([Leak("cgroup", str(top))], recorder("delete_state")) == []
    assert not top.exists()
    assert (host.cgroup / "memory").is_dir()


def test_clean_kills_a_process_whose_start_time_still_matches(
    host: FakeHost, recorder: Recorder
) -> None:
    host.add_process(NOT_A_PID, [TOKEN], start=555)
    leak = process_leak(NOT_A_PID, TOKEN, 555)
    assert host.sentinel().clean([leak], recorder("delete_state")) == []
    assert recorder.calls == [("kill", (NOT_A_PID, signal.SIGKILL))]


def test_clean_spares_a_reused_pid(host: FakeHost, recorder: Recorder) -> None:
    host.add_process(NOT_A_PID, ["someone", "else"], start=556)
    leak = process_leak(NOT_A_PID, TOKEN, 555)
    assert host.sentinel().clean([leak], recorder("delete_state")) == []
    assert recorder.calls == []


def test_clean_skips_a_process_that_is_already_gone(host: FakeHost, recorder: Recorder) -> None:
    leak = process_leak(NOT_A_PID, TOKEN, 555)
    assert host.sentinel().clean([leak], recorder("delete_state")) == []
    assert recorder.calls == []


def test_clean_goes_from_state_to_processes_to_mounts_to_devices_to_cgroups(
    host: FakeHost, recorder: Recorder
) -> None:
    host.add_process(NOT_A_PID, [TOKEN], start=9)
    cgroup = host.add_cgroup(f"pids/{TOKEN}1")
    leaks = [
        Leak("cgroup", str(cgroup)),
        Leak("netns", f"{host.netns}/{TOKEN}ns"),
        Leak("netdev", f"veth{TOKEN}1"),
        Leak("mount", f"/run/{TOKEN}1/rootfs"),
        process_leak(NOT_A_PID, TOKEN, 9),
        Leak("state", f"{TOKEN}1"),
    ]
    assert host.sentinel().clean(leaks, recorder("delete_state")) == []
    assert recorder.calls == [
        ("delete_state", (f"{TOKEN}1",)),
        ("kill", (NOT_A_PID, signal.SIGKILL)),
        ("umount", (f"/run/{TOKEN}1/rootfs",)),
        ("run", (["ip", "link", "del", f"veth{TOKEN}1"],)),
        ("run", (["ip", "netns", "del", f"{TOKEN}ns"],)),
    ]
    assert not cgroup.exists()


def test_clean_reports_failures_as_strings_and_goes_on(host: FakeHost, recorder: Recorder) -> None:
    busy = host.add_cgroup(f"memory/{TOKEN}busy")
    (busy / "cgroup.procs").write_text("1\n")  # rmdir refuses a non-empty directory
    idle = host.add_cgroup(f"memory/{TOKEN}idle")
    host.add_process(NOT_A_PID, [TOKEN], start=1)
    recorder.failing["delete_state"] = RuntimeError("runtime refused")
    recorder.failing["kill"] = ProcessLookupError(3, "No such process")
    recorder.failing["run"] = subprocess.CalledProcessError(1, ["ip"])
    leaks = [
        Leak("state", f"{TOKEN}1"),
        process_leak(NOT_A_PID, TOKEN, 1),
        Leak("netdev", f"veth{TOKEN}1"),
        Leak("cgroup", str(busy)),
        Leak("cgroup", str(idle)),
    ]

    problems = host.sentinel().clean(leaks, recorder("delete_state"))

    assert all(isinstance(p, str) for p in problems)
    assert len(problems) == 4
    state, process, netdev, cgroup = problems
    assert state.startswith("state") and "runtime refused" in state
    assert f"pid {NOT_A_PID}" in process and "No such process" in process
    assert f"veth{TOKEN}1" in netdev
    assert str(busy) in cgroup
    assert not idle.exists()  # one failure does not stop the rest


# --- IPC objects and the host's names ------------------------------------------------------------

OUR_KEY = ipckeys.key_for(f"{TOKEN}7")


def test_ipc_keys_carry_the_token_and_differ_per_container() -> None:
    keys = {ipckeys.key_for(f"{TOKEN}{n}") for n in range(1, 128)}
    assert len(keys) == 127  # 127 consecutive containers never share a key
    assert all(0 < k < 2**31 and ipckeys.is_ours(TOKEN, k) for k in keys)
    assert not any(ipckeys.is_ours("bh-c0ffef-", k) for k in keys)
    assert not ipckeys.is_ours(TOKEN, ipckeys.key_for(f"{TOKEN}1") & ~0x7F)  # slot 0
    assert ipckeys.token_of(f"{TOKEN}12") == TOKEN
    with pytest.raises(ValueError):
        ipckeys.token_of("container-1")


def test_snapshot_finds_our_ipc_objects_by_key_and_queue_name(host: FakeHost) -> None:
    other = ipckeys.key_for("bh-beef00-7")
    host.add_sysv("shm", OUR_KEY, 3)
    host.add_sysv("shm", other, 4)
    host.add_sysv("msg", OUR_KEY, 5)
    host.add_sysv("sem", 0x1234, 6)  # someone else's key
    host.add_sysv("sem", OUR_KEY, 7)
    host.mqueues = [f"{TOKEN}7-mq", "bh-beef00-7-mq", "postgres"]

    assert host.sentinel().snapshot() == {
        Leak("shm", f"key {OUR_KEY:#010x} id 3", "3"),
        Leak("msg", f"key {OUR_KEY:#010x} id 5", "5"),
        Leak("sem", f"key {OUR_KEY:#010x} id 7", "7"),
        Leak("mqueue", f"{TOKEN}7-mq"),
    }


def test_a_renamed_host_is_reported_with_the_old_and_new_names(host: FakeHost) -> None:
    host.set_uts("vm")
    sentinel = host.sentinel()
    before = sentinel.snapshot()
    assert sentinel.leaks(before, settle=0) == []

    host.set_uts("renamed-inside", "evil.example")

    leaks = sentinel.leaks(before, settle=0)
    assert [leak.describe() for leak in leaks] == [
        "domainname changed from '(none)' to 'evil.example'",
        "hostname changed from 'vm' to 'renamed-inside'",
    ]


def test_clean_puts_the_host_names_back(host: FakeHost, recorder: Recorder) -> None:
    host.set_uts("vm")
    sentinel = host.sentinel()
    before = sentinel.snapshot()
    host.set_uts("renamed-inside", "evil.example")

    assert sentinel.clean(sentinel.leaks(before, settle=0), recorder("delete_state")) == []
    assert (host.uts("hostname"), host.uts("domainname")) == ("vm\n", "(none)\n")
    assert sentinel.leaks(before, settle=0) == []


def test_clean_removes_our_ipc_objects(
    host: FakeHost, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("shm_remove", "msg_remove", "sem_remove", "mq_remove"):
        monkeypatch.setattr(_sys, name, recorder(name))
    monkeypatch.setattr("bulkhead.sentinel._SYSV_REMOVE", {
        "shm": _sys.shm_remove, "msg": _sys.msg_remove, "sem": _sys.sem_remove,
    })  # fmt: skip
    host.add_sysv("shm", OUR_KEY, 3)
    host.add_sysv("sem", OUR_KEY, 7)
    host.mqueues = [f"{TOKEN}7-mq"]
    sentinel = host.sentinel()
    leaks = sorted(sentinel.snapshot())
    # id 9 is no longer there: nothing is removed under a stale id.
    leaks.append(Leak("msg", f"key {OUR_KEY:#010x} id 9", "9"))

    assert sentinel.clean(leaks, recorder("delete_state")) == []
    assert recorder.calls == [
        ("shm_remove", (3,)),
        ("sem_remove", (7,)),
        ("mq_remove", (f"{TOKEN}7-mq",)),
    ]


def test_clean_spares_an_id_reused_by_someone_else(
    host: FakeHost, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bulkhead.sentinel._SYSV_REMOVE", {"shm": recorder("shm_remove")})
    host.add_sysv("shm", 0x1234, 3)  # id 3 now holds someone else's key
    leak = Leak("shm", f"key {OUR_KEY:#010x} id 3", "3")
    assert host.sentinel().clean([leak], recorder("delete_state")) == []
    assert recorder.calls == []
