"""What the host can see of a container: its namespaces, mounts and cgroups, read from /proc.

These are the suite's witnesses from outside; together with probes inside the container they
let a test compare the container's view with the host's without trusting the runtime's word.
"""

from __future__ import annotations

import os
from pathlib import Path

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
