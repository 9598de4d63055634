"""The leak sentinel: what a test left behind on the host.

Before and after every test it takes a snapshot of the host's mounts, cgroups, network devices,
named network namespaces, processes, runtime state directories and IPC objects (System V objects
and POSIX message queues), keeping only what is ours: what carries this session's id token, or
lies under this session's directories, or (System V objects, which have only numeric keys) has a
key derived from the token (bulkhead.ipckeys). Anything ours that is there after the test and was
not there before is a leak; the test fails with the list, then the sentinel removes what it can
so one leak does not cascade into every later test.

The host's hostname and domain name are part of the snapshot too: a runtime that fails to give
a container its own UTS namespace would let a test rename the machine, so a change is reported
like a leak ("hostname changed from X to Y") and cleaning puts the old name back.

Matching only our own token and paths is what lets it run on a busy machine (or beside other
xdist workers) without blaming a test for someone else's activity.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bulkhead import _sys, ipckeys
from bulkhead.host import parse_mountinfo

# The host's names, under /proc/sys/kernel (proc(5)); reported and restored like leaks.
UTS_NAMES = ("hostname", "domainname")
# /proc/sysvipc/<kind> lists the System V objects of the reader's IPC namespace (proc(5)).
SYSV_KINDS = ("shm", "msg", "sem")
_SYSV_REMOVE: dict[str, Callable[[int], None]] = {
    "shm": _sys.shm_remove,
    "msg": _sys.msg_remove,
    "sem": _sys.sem_remove,
}


@dataclass(frozen=True, order=True)
class Leak:
    # mount, cgroup, process, netdev, netns, state, shm, msg, sem, mqueue, hostname, domainname
    kind: str
    what: str  # a path, a device name, "pid N: cmdline", "key 0x... id N", a queue's name
    # What cleanup needs: the pid and start time of a process, the id of a System V object,
    # the old value of a host name.
    handle: str = ""

    def describe(self) -> str:
        return f"{self.kind:8} {self.what}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Sentinel:
    def __init__(
        self,
        token: str,
        roots: Sequence[Path],
        *,
        runtime_root: Path,
        proc: Path = Path("/proc"),
        sysfs: Path = Path("/sys"),
        netns_dir: Path = Path("/run/netns"),
        mqueues: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.token = token
        self.roots = tuple(str(r) for r in roots)
        # A root matches as a whole path prefix: /r/gw1 must not claim /r/gw10/... of a
        # neighbouring xdist worker.
        self._root_re = re.compile(
            "|".join(re.escape(r.rstrip("/")) + r"(?=/|\s|,|$)" for r in self.roots) or "(?!)"
        )
        self.runtime_root = runtime_root
        self.proc = proc
        self.sysfs = sysfs
        self.netns_dir = netns_dir
        self._list_mqueues = mqueues if mqueues is not None else self._host_mqueues

    def _ours(self, text: str) -> bool:
        return self.token in text or self._root_re.search(text) is not None

    # --- what is on the host now ---------------------------------------------------------
    def _mounts(self, mountinfo: str) -> Iterable[Leak]:
        # Whole lines are matched: an overlay is ours by its upperdir even where it is mounted.
        for line in mountinfo.splitlines():
            if self._ours(line):
                for point, _, _ in parse_mountinfo(line):
                    yield Leak("mount", point)

    def _cgroups(self, mountinfo: str) -> Iterable[Leak]:
        # Runtimes are given cgroupsPath /<id> by the suite, so ours sit near the top; three
        # levels also catch a runtime that nests them under a parent of its own.
        def walk(d: Path, depth: int) -> Iterable[Leak]:
            try:
                entries = list(os.scandir(d))
            except OSError:
                return
            for e in entries:
                if not e.is_dir(follow_symlinks=False):
                    continue
                if self.token in e.name:
                    yield Leak("cgroup", e.path)
                elif depth < 3:
                    yield from walk(Path(e.path), depth + 1)

        for point, fstype, _ in parse_mountinfo(mountinfo):
            if fstype in ("cgroup", "cgroup2"):
                yield from walk(Path(point), 1)

    def _processes(self) -> Iterable[Leak]:
        me = os.getpid()
        for entry in os.scandir(self.proc):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            base = Path(entry.path)
            cmdline = _read(base / "cmdline").replace("\0", " ").strip()
            if not (self._ours(cmdline) or self.token in _read(base / "cgroup")):
                continue
            fields = _read(base / "stat").rpartition(")")[2].split()
            if len(fields) < 20:
                continue  # gone while we looked
            state, ppid, start = fields[0], int(fields[1]), fields[19]
            if state == "Z" and ppid != me:
                # A dead container init waits for its parent (often the host's init, which on
                # some machines reaps only every second or so); it holds nothing but its pid.
                continue
            yield Leak("process", f"pid {entry.name}: {cmdline[:120]}", f"{entry.name}:{start}")

    def _netdevs(self) -> Iterable[Leak]:
        with contextlib.suppress(OSError):
            for e in os.scandir(self.sysfs / "class" / "net"):
                if self.token in e.name:
                    yield Leak("netdev", e.name)
        with contextlib.suppress(OSError):
            for e in os.scandir(self.netns_dir):
                if self.token in e.name:
                    yield Leak("netns", e.path)

    def _states(self) -> Iterable[Leak]:
        with contextlib.suppress(OSError):
            for e in os.scandir(self.runtime_root):
                if e.is_dir() and self.token in e.name:
                    yield Leak("state", e.name)

    def _sysv(self) -> Iterable[Leak]:
        for kind in SYSV_KINDS:
            for key, ident in _sysv_objects(_read(self.proc / "sysvipc" / kind)):
                if ipckeys.is_ours(self.token, key):
                    yield Leak(kind, f"key {key:#010x} id {ident}", str(ident))

    def _mqueues(self) -> Iterable[Leak]:
        for name in self._list_mqueues():
            if self.token in name:
                yield Leak("mqueue", name)

    def _host_mqueues(self) -> list[str]:
        """The POSIX message queues of our IPC namespace, changing nothing on the host.

        Listing them needs a mqueue filesystem (mq_overview(7)), and the host may have none
        mounted. A short-lived private mount namespace gets one of its own: a mqueue mount
        shows the IPC namespace of the process that mounts it, which is ours, and the mount
        vanishes with that namespace. It is laid over our own working directory, which exists.
        """
        if not (self.proc / "sys" / "fs" / "mqueue").is_dir() or not self.roots:
            return []  # a kernel without POSIX message queues
        script = 'mount -t mqueue bulkhead-sentinel "$0" && ls -1a "$0"'
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
             self.roots[0]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return [n for n in done.stdout.split() if n not in (".", "..")]

    def _uts(self) -> Iterable[Leak]:
        for name in UTS_NAMES:
            value = _read(self.proc / "sys" / "kernel" / name).strip()
            if value:
                yield Leak(name, value)

    def snapshot(self) -> frozenset[Leak]:
        """What is ours on the host now, and the host's names (compared, never "ours")."""
        mountinfo = _read(self.proc / "self" / "mountinfo")  # read once, used twice
        found: set[Leak] = set()
        found.update(self._mounts(mountinfo), self._cgroups(mountinfo))
        sources = (self._processes, self._netdevs, self._states, self._sysv, self._mqueues)
        for source in (*sources, self._uts):
            found.update(source())
        return frozenset(found)

    def leaks(self, before: frozenset[Leak], *, settle: float = 2.0) -> list[Leak]:
        """What is ours now and was not before, after letting exiting things finish.

        A container's init that was just killed stays a zombie until its parent (often the
        host's init) reaps it, and some runtimes remove cgroups asynchronously: a leak is only
        what is still there after ``settle`` seconds.
        """
        deadline = time.monotonic() + settle
        delay = 0.005
        while True:
            found = sorted(self.snapshot() - before)
            if not found or time.monotonic() > deadline:
                return [_changed(leak, before) for leak in found]
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # --- cleaning up after a leak ---------------------------------------------------------------
    def clean(self, leaks: Sequence[Leak], delete_state: Callable[[str], None]) -> list[str]:
        """Removes leaked things; returns what could not be removed, with the reason."""
        problems: list[str] = []
        order = (
            *UTS_NAMES, "state", "process", "mount", "netdev", "netns", "cgroup",
            *SYSV_KINDS, "mqueue",
        )  # fmt: skip
        for leak in sorted(leaks, key=lambda item: order.index(item.kind)):
            try:
                self._clean_one(leak, delete_state)
            except Exception as exc:  # cleanup is best effort; each failure is reported
                problems.append(f"{leak.describe()}: {exc}")
        return problems

    def _clean_one(self, leak: Leak, delete_state: Callable[[str], None]) -> None:
        if leak.kind == "state":
            delete_state(leak.what)
        elif leak.kind == "process":
            pid, start = leak.handle.split(":")
            stat = _read(self.proc / pid / "stat")
            # Same pid and same start time: still the process we saw, not a reused pid.
            if ")" in stat and stat.rpartition(")")[2].split()[19] == start:
                os.kill(int(pid), signal.SIGKILL)
        elif leak.kind == "mount":
            with contextlib.suppress(FileNotFoundError):
                _sys.umount(leak.what, detach=True)
        elif leak.kind == "netdev":
            subprocess.run(["ip", "link", "del", leak.what], check=True, capture_output=True)
        elif leak.kind == "netns":
            subprocess.run(
                ["ip", "netns", "del", Path(leak.what).name], check=True, capture_output=True
            )
        elif leak.kind == "cgroup":
            _rmdir_tree(Path(leak.what))
        elif leak.kind in SYSV_KINDS:
            ident = int(leak.handle)
            # Only while that id still holds one of our keys: ids are reused once removed.
            listed = _sysv_objects(_read(self.proc / "sysvipc" / leak.kind))
            if any(i == ident and ipckeys.is_ours(self.token, k) for k, i in listed):
                _SYSV_REMOVE[leak.kind](ident)
        elif leak.kind == "mqueue":
            with contextlib.suppress(FileNotFoundError):
                _sys.mq_remove(leak.what)
        elif leak.kind in UTS_NAMES:
            if not leak.handle:
                raise RuntimeError(f"the {leak.kind} before the test is unknown: not restored")
            (self.proc / "sys" / "kernel" / leak.kind).write_text(leak.handle + "\n")


def _changed(leak: Leak, before: frozenset[Leak]) -> Leak:
    """A host name that differs from ``before`` becomes "changed from X to Y" (and keeps X)."""
    if leak.kind not in UTS_NAMES:
        return leak
    old = next((b.what for b in before if b.kind == leak.kind), "")
    if not old:
        return Leak(leak.kind, f"is now {leak.what!r} (unknown before the test)")
    return Leak(leak.kind, f"changed from {old!r} to {leak.what!r}", old)


def _sysv_objects(table: str) -> list[tuple[int, int]]:
    """(key, id) of each row of a /proc/sysvipc table; the first line is a header."""
    rows = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[0].lstrip("-").isdigit() and fields[1].isdigit():
            rows.append((int(fields[0]), int(fields[1])))
    return rows


def _rmdir_tree(path: Path) -> None:
    """cgroup directories are removed bottom-up with rmdir (their files cannot be unlinked)."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        child.rmdir()
    path.rmdir()
