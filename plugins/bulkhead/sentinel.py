"""The leak sentinel: what a test left behind on the host.

Before and after every test it takes a snapshot of the host's mounts, cgroups, network devices,
named network namespaces, processes and runtime state directories, keeping only what is ours:
what carries this session's id token or lies under this session's directories. Anything ours
that is there after the test and was not there before is a leak; the test fails with the list,
then the sentinel removes what it can so one leak does not cascade into every later test.

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

from bulkhead import _sys
from bulkhead.host import parse_mountinfo


@dataclass(frozen=True, order=True)
class Leak:
    kind: str  # mount, cgroup, process, netdev, netns, state
    what: str  # a path, a device name, or "pid N: cmdline"
    handle: str = ""  # what cleanup needs: the pid and start time for a process

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

    def snapshot(self) -> frozenset[Leak]:
        mountinfo = _read(self.proc / "self" / "mountinfo")  # read once, used twice
        found: set[Leak] = set()
        found.update(self._mounts(mountinfo), self._cgroups(mountinfo))
        for source in (self._processes, self._netdevs, self._states):
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
                return found
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # --- cleaning up after a leak ---------------------------------------------------------------
    def clean(self, leaks: Sequence[Leak], delete_state: Callable[[str], None]) -> list[str]:
        """Removes leaked things; returns what could not be removed, with the reason."""
        problems: list[str] = []
        order = ("state", "process", "mount", "netdev", "netns", "cgroup")
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


def _rmdir_tree(path: Path) -> None:
    """cgroup directories are removed bottom-up with rmdir (their files cannot be unlinked)."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        child.rmdir()
    path.rmdir()
