"""The host's view of a container's cgroups, on cgroup v1, v2 or a hybrid of both.

Nothing here asks the runtime where it put the container: the layout comes from the host's
/proc/self/mountinfo (which hierarchies are mounted where, and which controllers each holds),
and a process's place from /proc/<pid>/cgroup, read in the host's cgroup namespace (the paths
are then the host's, whatever namespace the process is in).

A controller lives in one hierarchy at a time (cgroups(7)): on a hybrid host ``pids`` may be a
v1 hierarchy of its own while ``hugetlb`` sits in the cgroup2 one. So a knob is looked up by its
controller: the v1 hierarchy bound to it if there is one, else the cgroup2 hierarchy when its
root lists the controller in ``cgroup.controllers``. Tests name both spellings of a knob
(``memory.limit_in_bytes`` on v1, ``memory.max`` on v2) and compare against the value the
version found calls for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead.host import parse_mountinfo

PROC = Path("/proc")
# Files of the cgroup2 core: present in every v2 cgroup, owned by no controller.
V2_CORE = "cgroup"


def _known_controllers(proc: Path = PROC) -> set[str]:
    """Controller names the kernel knows (/proc/cgroups): mount options such as ``xattr`` or
    ``release_agent=`` on a v1 mount are not controllers."""
    try:
        lines = (proc / "cgroups").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line and not line.startswith("#")}


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: v1 (with the controllers bound to it) or cgroup2."""

    version: int
    mount: Path
    # The cgroup the mount shows as its root (field 4 of mountinfo; "/" unless a namespace or a
    # bind mount of a sub-cgroup).
    root: str
    controllers: frozenset[str]
    # A v1 hierarchy's name ("name=systemd"), for hierarchies that bind no controller.
    name: str = ""

    def dir_of(self, cgroup_path: str) -> Path:
        """The directory of the cgroup ``cgroup_path`` (as /proc/<pid>/cgroup names it)."""
        rel = cgroup_path
        if self.root != "/" and (rel == self.root or rel.startswith(self.root + "/")):
            rel = rel[len(self.root) :]
        return self.mount / rel.lstrip("/")


@dataclass(frozen=True)
class Layout:
    """Every cgroup hierarchy the host has mounted."""

    hierarchies: tuple[Hierarchy, ...]

    @property
    def v2(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def v1(self) -> tuple[Hierarchy, ...]:
        return tuple(h for h in self.hierarchies if h.version == 1)

    @property
    def mode(self) -> str:
        """``unified`` (cgroup2 alone holds the controllers), ``legacy`` or ``hybrid``."""
        bound = any(h.controllers for h in self.v1)
        if self.v2 is not None and not bound:
            return "unified"
        return "hybrid" if self.v2 is not None else "legacy"

    def hierarchy_of(self, controller: str) -> Hierarchy | None:
        """The hierarchy that holds ``controller`` (``cgroup`` is the v2 core)."""
        for h in self.v1:
            if controller in h.controllers:
                return h
        v2 = self.v2
        if v2 is not None and (controller == V2_CORE or controller in v2.controllers):
            return v2
        return None

    def describe(self) -> str:
        """In short: the mode, and what the cgroup2 hierarchy holds."""
        v2 = self.v2
        if v2 is None:
            return f"{self.mode}: {len(self.v1)} v1 hierarchies, no cgroup2"
        ctrls = ",".join(sorted(v2.controllers)) or "no controllers"
        return f"{self.mode}: cgroup2 at {v2.mount} holds {ctrls}; {len(self.v1)} v1 hierarchies"


def layout(proc: Path = PROC) -> Layout:
    """The host's cgroup hierarchies, from the mounts the test process sees."""
    known = _known_controllers(proc)
    found: list[Hierarchy] = []
    seen_v2 = False
    for line in (proc / "self" / "mountinfo").read_text().splitlines():
        fields = line.partition(" - ")[0].split()
        parsed = parse_mountinfo(line)
        if not parsed or len(fields) < 5:
            continue
        point, fstype, options = parsed[0]
        root = fields[3]
        if fstype == "cgroup2" and not seen_v2:
            seen_v2 = True
            try:
                ctrls = frozenset((Path(point) / "cgroup.controllers").read_text().split())
            except OSError:
                ctrls = frozenset()
            found.append(Hierarchy(2, Path(point), root, ctrls))
        elif fstype == "cgroup":
            opts = options.split(",")
            name = next((o for o in opts if o.startswith("name=")), "")
            ctrls = frozenset(o for o in opts if o in known)
            if any(h.version == 1 and h.controllers == ctrls and h.name == name for h in found):
                continue  # the same hierarchy mounted twice
            found.append(Hierarchy(1, Path(point), root, ctrls, name))
    return Layout(tuple(found))


def cgroup_lines(pid: int | str, proc: Path = PROC) -> list[tuple[str, frozenset[str], str]]:
    """(hierarchy id, controllers, path) of each line of /proc/<pid>/cgroup (cgroups(7)); the
    v2 line is ``0::/path``."""
    text = (proc / str(pid) / "cgroup").read_text()
    out = []
    for line in text.splitlines():
        ident, names, path = line.split(":", 2)
        out.append((ident, frozenset(n for n in names.split(",") if n), path))
    return out


@dataclass(frozen=True)
class Knob:
    """One cgroup file of a process, found on the host: the version that holds it and where."""

    version: int
    path: Path

    def read(self) -> str:
        return self.path.read_text().strip()

    @property
    def exists(self) -> bool:
        return self.path.is_file()


class ProcessCgroups:
    """Where the host puts one process in each hierarchy (read fresh on every call)."""

    def __init__(self, pid: int, layout_: Layout | None = None, proc: Path = PROC) -> None:
        self.pid = pid
        self.layout = layout_ or layout(proc)
        self.proc = proc

    def path_in(self, hierarchy: Hierarchy) -> str:
        """The process's cgroup path in ``hierarchy`` (from /proc/<pid>/cgroup)."""
        for _, names, path in cgroup_lines(self.pid, self.proc):
            if hierarchy.version == 2 and not names:
                return path
            bound = hierarchy.controllers | ({hierarchy.name} if hierarchy.name else set())
            if hierarchy.version == 1 and names and names == bound:
                return path
        raise LookupError(f"/proc/{self.pid}/cgroup has no line for {hierarchy.mount}")

    def dir(self, controller: str) -> Path:
        """The process's cgroup directory for ``controller`` (``cgroup``: the v2 one)."""
        h = self.layout.hierarchy_of(controller)
        if h is None:
            pytest.skip(
                f"this host mounts no cgroup hierarchy with the {controller} controller "
                f"({self.layout.describe()})"
            )
        return h.dir_of(self.path_in(h))

    def dirs(self) -> dict[Path, Path]:
        """Mount point → the process's cgroup directory, in every hierarchy."""
        return {h.mount: h.dir_of(self.path_in(h)) for h in self.layout.hierarchies}

    def knob(self, *, v1: str | None = None, v2: str | None = None) -> Knob:
        """A cgroup file by its v1 and/or v2 name; its controller is the name's first part.

        Skips with the host's reason when the controller of the version that holds it is not
        mounted, or when the knob has no name for that version (a v1-only setting on v2).
        """
        for version, name in ((1, v1), (2, v2)):
            if name is None:
                continue
            h = self.layout.hierarchy_of(name.split(".", 1)[0])
            if h is not None and h.version == version:
                return Knob(version, h.dir_of(self.path_in(h)) / name)
        wanted = " / ".join(f"v{v}: {n}" for v, n in ((1, v1), (2, v2)) if n)
        pytest.skip(f"no hierarchy on this host holds {wanted} ({self.layout.describe()})")

    def processes(self, controller: str) -> list[int]:
        """The pids in the process's cgroup for ``controller`` (its cgroup.procs)."""
        return procs_of(self.dir(controller))


def procs_of(directory: Path) -> list[int]:
    return [int(x) for x in (directory / "cgroup.procs").read_text().split()]


def own_paths(pid: int | str = "self", proc: Path = PROC) -> dict[str, str]:
    """Hierarchy key (its controllers joined by commas, or ``0`` for v2) → cgroup path."""
    return {
        ",".join(sorted(names)) if names else ident: path
        for ident, names, path in cgroup_lines(pid, proc)
    }


@contextlib.contextmanager
def removed_afterwards(layout_: Layout, rel: str) -> Iterator[None]:
    """Removes ``<mount>/<rel>`` and each of its parents up to the mount in every hierarchy
    after the block, deepest first, wherever they exist: a runtime removes the cgroup it
    made on delete but may leave the parents of a nested cgroupsPath behind."""
    parts = Path(rel.lstrip("/")).parts
    try:
        yield
    finally:
        for h in layout_.hierarchies:
            for depth in range(len(parts), 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(h.mount.joinpath(*parts[:depth]))


def remove_leftovers(name: str, layout_: Layout | None = None) -> list[Path]:
    """Removes empty cgroups called ``name`` directly under each hierarchy's mount (deepest
    first), where a refused create may have left them; returns what it removed. A test that
    has already judged the refusal calls this so one runtime's leftovers are not reported a
    second time, as a leak, by the sentinel."""
    removed = []
    for h in (layout_ or layout()).hierarchies:
        top = h.mount / name
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
            removed.append(top)
    return removed
