"""What the host can see of a container: its namespaces, mounts and cgroups, read from /proc.

These are the suite's witnesses from outside; together with probes inside the container they
let a test compare the container's view with the host's without trusting the runtime's word.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from bulkhead.host import parse_mountinfo

NAMESPACE_FILES = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


def namespace_id(pid: int | str, spec_type: str) -> str:
    """The namespace identity (``net:[4026531840]``) of a process, by the spec's type name."""
    return os.readlink(f"/proc/{pid}/ns/{NAMESPACE_FILES[spec_type]}")


def mount_points(pid: int | str = "self") -> list[str]:
    return [line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]


def nspid(pid: int) -> list[int]:
    """The pid of a process in each pid namespace it belongs to, outermost first."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    raise LookupError(f"/proc/{pid}/status has no NSpid line")


def cgroup_dirs(name: str, root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """Directories called ``name`` directly under each cgroup hierarchy's root."""
    found = []
    for hierarchy in root.iterdir():
        candidate = hierarchy / name
        if candidate.is_dir():
            found.append(candidate)
    if (root / name).is_dir():
        found.append(root / name)
    return found


# --- processes, named so that a reused pid is not mistaken for the one a test saw ------------

PROC = Path("/proc")
# Process states (proc(5), /proc/<pid>/stat field 3) of a task that has ended: a zombie waits
# for its parent to reap it, X/x are "dead" (seen only for a moment while it is released).
ENDED_STATES = frozenset("ZXx")


@dataclass(frozen=True)
class ProcessRef:
    """One process as the kernel knows it: a pid and the time it started.

    ``start_time`` is field 22 of /proc/<pid>/stat (clock ticks after boot). A pid may be
    reused once its process is gone; the pair names one process for the life of the machine.
    """

    pid: int
    start_time: int

    def describe(self) -> str:
        return f"pid {self.pid} (started at tick {self.start_time})"


def _stat(pid: int | str, proc: Path) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the parenthesised comm), or None if gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: the fields start after the last ")".
    fields = text.rpartition(")")[2].split()
    return fields if len(fields) >= 20 else None


def process_ref(pid: int, proc: Path = PROC) -> ProcessRef:
    """The process now holding ``pid``; ProcessLookupError if there is none."""
    fields = _stat(pid, proc)
    if fields is None:
        raise ProcessLookupError(f"no process {pid} in {proc}")
    return ProcessRef(pid, int(fields[19]))  # field 22 is the 20th after comm and pid


def process_status(ref: ProcessRef, proc: Path = PROC) -> str:
    """What the host sees of ``ref`` now: ``gone``, ``reused`` (its pid names a process that
    started at another time), or the one-letter state of /proc/<pid>/stat (R, S, D, Z, ...)."""
    fields = _stat(ref.pid, proc)
    if fields is None:
        return "gone"
    if int(fields[19]) != ref.start_time:
        return "reused"
    return fields[0]


def is_alive(ref: ProcessRef, proc: Path = PROC) -> bool:
    """Whether the very process ``ref`` names still exists and has not ended (a zombie has)."""
    status = process_status(ref, proc)
    return status not in ("gone", "reused") and status not in ENDED_STATES


def cmdline(pid: int | str, proc: Path = PROC) -> list[str]:
    """The argv of a process (empty for a zombie or a kernel thread, or if it is gone)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


def cgroup_paths(pid: int | str, proc: Path = PROC) -> list[str]:
    """The cgroup path of a process in each hierarchy (the last field of /proc/<pid>/cgroup).

    Read from the host's cgroup namespace, the paths are the host's, whatever cgroup namespace
    the process itself is in.
    """
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]


def processes_rooted_in(upperdir: Path, proc: Path = PROC) -> list[int]:
    """Pids of the live processes whose root is the overlay mount with ``upperdir``.

    A container's init has the bundle's rootfs as the "/" of its mount namespace: in its own
    mountinfo, the mount at "/" is that overlay. Processes sharing the reader's mount namespace
    are skipped without reading their mountinfo (their "/" is the reader's).
    """
    try:
        mine = os.readlink(proc / "self" / "ns" / "mnt")
    except OSError:
        mine = ""
    found = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(Path(entry.path) / "ns" / "mnt") == mine:
                continue
        except OSError:
            continue  # gone while we looked, a zombie, or a kernel thread
        if is_rooted_in(entry.name, upperdir, proc):
            found.append(int(entry.name))
    return found


def is_rooted_in(pid: int | str, upperdir: Path, proc: Path = PROC) -> bool:
    """Whether the "/" of a process's mount namespace is the overlay mount with ``upperdir``
    (how the host knows a pid belongs to the container of that bundle)."""
    try:
        text = (proc / str(pid) / "mountinfo").read_text()
    except OSError:
        return False
    option = f"upperdir={upperdir}"
    return any(
        point == "/" and option in options.split(",") for point, _, options in parse_mountinfo(text)
    )


def start_seconds(ref: ProcessRef) -> float:
    """When ``ref`` started, in seconds after boot (the clock of CLOCK_BOOTTIME)."""
    return ref.start_time / os.sysconf("SC_CLK_TCK")


def signal_process(ref: ProcessRef, signum: int, proc: Path = PROC) -> bool:
    """Sends ``signum`` to the very process ``ref`` names; False if it is gone or its pid reused.

    A pidfd pins one process: checked against the start time after it is opened, the signal
    cannot reach a newcomer that took the pid in between (pidfd_open(2)).
    """
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return False
    try:
        if process_status(ref, proc) in ("gone", "reused"):
            return False
        signal.pidfd_send_signal(fd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
