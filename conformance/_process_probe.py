"""What the container process is, read by itself from /proc in one foreground run.

The container process is busybox sh running SNAPSHOT: each file is opened by the shell (a fork
of the container process, so the same credentials, before any exec could change them) and
dumped as hex by od, so NUL-separated files (environ, cmdline) and any bytes come back intact.
The files are those of `$$`, the container process itself, never of a child that exec'd and
so got capabilities recomputed (capabilities(7)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bulkhead.containers import Result

FILES = ("status", "limits", "environ", "cmdline", "oom_score_adj")

# The directory the process runs in, as the kernel has it (not $PWD, which sh may take from a
# leaked environment): a child inherits the cwd, and /proc/self/cwd names it.
_CWD = 'echo "@@cwd"; readlink /proc/self/cwd | od -An -v -tx1'


def snapshot_script(files: Sequence[str] = FILES) -> str:
    dumps = "; ".join(f'echo "@@{name}"; od -An -v -tx1 </proc/$$/{name}' for name in files)
    return f"{dumps}; {_CWD}"


SNAPSHOT = snapshot_script()

# /proc/<pid>/limits rows (fs/proc/base.c lnames[]) per rlimit type.
LIMIT_ROWS = {
    "RLIMIT_CPU": "Max cpu time",
    "RLIMIT_FSIZE": "Max file size",
    "RLIMIT_DATA": "Max data size",
    "RLIMIT_STACK": "Max stack size",
    "RLIMIT_CORE": "Max core file size",
    "RLIMIT_RSS": "Max resident set",
    "RLIMIT_NPROC": "Max processes",
    "RLIMIT_NOFILE": "Max open files",
    "RLIMIT_MEMLOCK": "Max locked memory",
    "RLIMIT_AS": "Max address space",
    "RLIMIT_LOCKS": "Max file locks",
    "RLIMIT_SIGPENDING": "Max pending signals",
    "RLIMIT_MSGQUEUE": "Max msgqueue size",
    "RLIMIT_NICE": "Max nice priority",
    "RLIMIT_RTPRIO": "Max realtime priority",
    "RLIMIT_RTTIME": "Max realtime timeout",
}
RLIM_INFINITY = 2**64 - 1


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, bytes]

    @classmethod
    def parse(cls, result: Result) -> Snapshot:
        assert result.exit_code == 0, f"the snapshot failed (exit {result.exit_code}): {result}"
        files: dict[str, bytes] = {}
        name = None
        for line in result.stdout.splitlines():
            if line.startswith("@@"):
                name = line[2:]
                files[name] = b""
            elif name is not None:
                files[name] += bytes.fromhex(line)
        assert "cwd" in files, f"no snapshot in the container's output: {result}"
        return cls(files)

    def text(self, name: str) -> str:
        assert name in self.files, f"/proc/self/{name} was not read"
        return self.files[name].decode()

    def status(self) -> dict[str, str]:
        fields = {}
        for line in self.text("status").splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return fields

    def ids(self, field: str) -> list[int]:
        """A Uid/Gid/Groups line of status as numbers."""
        return [int(v) for v in self.status()[field].split()]

    def limits(self) -> dict[str, tuple[int, int]]:
        """(soft, hard) per rlimit type; "unlimited" is RLIM_INFINITY."""
        by_row: dict[str, tuple[int, int]] = {}
        for line in self.text("limits").splitlines()[1:]:
            # Fixed-width columns: a 25-character name, then soft and hard (fs/proc/base.c).
            soft, hard = (
                RLIM_INFINITY if v == "unlimited" else int(v) for v in line[25:].split()[:2]
            )
            by_row[line[:25].strip()] = (soft, hard)
        return {kind: by_row[row] for kind, row in LIMIT_ROWS.items() if row in by_row}

    def strings(self, name: str) -> list[str]:
        """A NUL-separated file (environ, cmdline) as its entries."""
        raw = self.files[name]
        assert raw.endswith(b"\0") or not raw, f"/proc/self/{name} is not NUL-terminated: {raw!r}"
        return [part.decode() for part in raw.split(b"\0")[:-1]]

    @property
    def cwd(self) -> str:
        return self.text("cwd").rstrip("\n")
