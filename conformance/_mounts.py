"""Mount tables as the kernel shows them, for the mount, masked/read-only path and rootfs tests.

A container's /proc/self/mountinfo (proc(5)) is the judge's view of what a runtime mounted where:
the mount point, the filesystem type, the per-mount options (``ro``), the root of the mount
within its filesystem and the propagation tags (``shared:N``, ``master:N``, ``unbindable``).
The helpers here parse it (host side or as printed by a container) without trusting the runtime.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bulkhead import _sys
from bulkhead.containers import ContainerFactory
from bulkhead.spec import Mount, Spec

# <linux/mount.h> flags for mount(2); the propagation ones: see mount_namespaces(7).
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

# A container script's mountinfo follows this line, so one run can report probes and mounts.
MOUNTINFO_MARK = "--- mountinfo"
PRINT_MOUNTINFO = f"echo '{MOUNTINFO_MARK}'; cat /proc/self/mountinfo"

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # The kernel escapes space, tab, newline and backslash in paths as \ooo (proc(5)).
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """One line of a mountinfo file."""

    mount_id: int
    parent_id: int
    device: str  # "major:minor" of the filesystem, as st_dev shows it
    root: str  # the mount's root within its filesystem ("/null" for a bound /dev/null)
    point: str
    options: frozenset[str]  # per-mount options: ro/rw, nosuid, ...
    tags: tuple[str, ...]  # optional fields: shared:N, master:N, propagate_from:N, unbindable
    fstype: str
    source: str
    super_options: frozenset[str]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def tag(self, name: str) -> str | None:
        """The value of an optional field such as ``shared`` or ``master``, if present."""
        for t in self.tags:
            key, _, value = t.partition(":")
            if key == name:
                return value or key
        return None

    def super_option(self, name: str) -> str | None:
        for opt in self.super_options:
            key, _, value = opt.partition("=")
            if key == name:
                return value
        return None


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(" "), right.split(" ")
        if not sep or len(fields) < 6 or len(rfields) < 2:
            continue
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                device=fields[2],
                root=_unescape(fields[3]),
                point=_unescape(fields[4]),
                options=frozenset(fields[5].split(",")),
                tags=tuple(fields[6:]),
                fstype=rfields[0],
                source=_unescape(rfields[1]),
                super_options=frozenset(rfields[2].split(",")) if len(rfields) > 2 else frozenset(),
            )
        )
    return entries


def split_output(stdout: str) -> tuple[list[str], list[MountEntry]]:
    """A container script's output lines before ``PRINT_MOUNTINFO``, and the mounts after it."""
    head, sep, tail = stdout.partition(MOUNTINFO_MARK + "\n")
    assert sep, f"the container printed no mountinfo: {stdout!r}"
    return head.splitlines(), parse_mountinfo(tail)


def top_mount(entries: list[MountEntry], point: str) -> MountEntry | None:
    """The mount visible at exactly ``point``: the last one mounted there, if any."""
    found = [e for e in entries if e.point == point]
    return found[-1] if found else None


def host_mounts() -> list[MountEntry]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def device_of(path: Path | str) -> str:
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def fields(line: str) -> dict[str, str]:
    """The ``key=value`` pairs of one bulkhead-probe line."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


@contextlib.contextmanager
def mounted(source: str, target: Path, fstype: str, data: str = "") -> Iterator[Path]:
    """A host mount of our own at ``target`` (which we create), unmounted on the way out."""
    target.mkdir(parents=True, exist_ok=True)
    _sys.mount(source, str(target), fstype, data)
    try:
        yield target
    finally:
        _sys.umount(str(target), detach=True)


def set_propagation(target: Path, flag: int) -> None:
    """mount --make-{shared,slave,private} on a mount point that this suite made."""
    _sys.mount("", str(target), "", flags=flag)


@contextlib.contextmanager
def host_tree(base: Path, *, shared: bool = False, flags: int = 0) -> Iterator[Path]:
    """A host directory ``base/tree`` holding a file, with a tmpfs submount at ``sub`` holding
    another, for binds and their submounts; the directory under ``sub`` keeps a file of its own
    (``sub/under``), seen only where the submount is not. ``shared`` makes the tree a tmpfs of
    its own and both mounts shared (peer groups of ours: every host mount here is private);
    ``flags`` (MS_NOSUID, MS_RDONLY ...) are given to both mounts. All unmounted on the way out.
    """
    tree = base / "tree"
    with contextlib.ExitStack() as stack:
        stack.enter_context(mounted("bulkhead-tree", tree, "tmpfs", "size=64k"))
        (tree / "top").write_text("top\n")
        (tree / "sub").mkdir()
        (tree / "sub" / "under").write_text("under\n")
        stack.enter_context(mounted("bulkhead-sub", tree / "sub", "tmpfs", "size=64k"))
        (tree / "sub" / "over").write_text("over\n")
        for path in (tree, tree / "sub") if flags else ():
            # mount(2): a bind remount changes the per-mount flags of just this mount.
            _sys.mount("", str(path), "", flags=MS_BIND | MS_REMOUNT | flags)
        if shared:
            set_propagation(tree, MS_SHARED)
            set_propagation(tree / "sub", MS_SHARED)
        yield tree


# --- configs with mounts of the tests' own, run to completion ------------------------------

# Small tmpfs mounts: nothing here writes more than a copy of busybox (~2 MB).
SIZE = "size=8m"


def tmpfs(destination: str, *options: str) -> Mount:
    return Mount(destination=destination, type="tmpfs", source="tmpfs", options=[*options, SIZE])


def bind(destination: str, source: Path | str, *options: str) -> Mount:
    return Mount(destination=destination, type="bind", source=str(source), options=list(options))


def with_mounts(spec: Spec, *mounts: Mount) -> Spec:
    assert spec.mounts is not None
    spec.mounts += list(mounts)
    return spec


def run_with(
    containers: ContainerFactory, script: str, *mounts: Mount, spec: Spec | None = None
) -> tuple[list[str], list[MountEntry]]:
    """Runs ``script`` then prints mountinfo, with ``mounts`` added to the config; returns the
    script's lines and the container's mount table."""
    spec = with_mounts(spec or containers.spec(), *mounts)
    assert spec.process is not None
    spec.process.args = ["sh", "-c", f"{script}; {PRINT_MOUNTINFO}" if script else PRINT_MOUNTINFO]
    result = containers.run(spec)
    assert result.exit_code == 0, f"the container did not run: {result.stderr.strip()}"
    return split_output(result.stdout)


def mount_at(mounts: list[MountEntry], point: str) -> MountEntry:
    found = top_mount(mounts, point)
    assert found is not None, f"nothing is mounted at {point}: {[m.point for m in mounts]}"
    return found
