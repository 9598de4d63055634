"""The cgroup manager: create the container's cgroup, limit it, put processes in, remove it.

``probe()`` reads the host's cgroup mounts (/proc/self/mountinfo) and picks a manager:

* v1 or hybrid (v1 controllers under /sys/fs/cgroup/<name>, maybe a cgroup2 mount beside them):
  ``V1Manager`` makes ``<mount>/<cgroupsPath>`` in every hierarchy (the cgroup2 one of a hybrid
  host included, for process placement only, as runc does) and writes v1 files;
* pure v2: ``V2Manager`` makes one directory, enables the controllers it needs in each
  ancestor's ``cgroup.subtree_control`` and writes v2 files.

Files and directories are passed in (``fs``), so unit tests run against a temporary tree.
The resource mapping (cgroups/mapping.py) is imported by ``create`` only: ``kill``, ``delete``
and ``exec`` restore a manager from the state and never write a limit.
"""

from __future__ import annotations

import os
import time

from reference_runtime.errors import SyscallError
from reference_runtime.linux.files import write_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.cgroups.mapping import Write

# Where a container without an absolute cgroupsPath goes (runtime-spec leaves it to us).
DEFAULT_PARENT = "/bulkhead-runtime"
# Weight files exist only under a scheduler that weighs I/O: CFQ's blkio.weight is gone from
# current kernels, BFQ offers its own (block/bfq-cgroup.c; cgroup-v2.rst "IO Interface Files").
WEIGHT_FALLBACK = {
    "blkio.weight": "blkio.bfq.weight",
    "blkio.weight_device": "blkio.bfq.weight_device",
    "io.weight": "io.bfq.weight",
}


def _target(directory: str, file: str) -> str:
    """``directory/file``, or the file the kernel offers in its place (WEIGHT_FALLBACK)."""
    path = f"{directory}/{file}"
    other = WEIGHT_FALLBACK.get(file)
    if other is not None and not os.path.exists(path) and os.path.exists(f"{directory}/{other}"):
        return f"{directory}/{other}"
    return path


def cgroup_path(configured: str | None, container_id: str) -> str:
    """An absolute cgroup path: as configured, relative ones under DEFAULT_PARENT."""
    if not configured:
        return f"{DEFAULT_PARENT}/{container_id}"
    if ":" in configured:
        # systemd's "slice:prefix:name" form (runc --systemd-cgroup); we have no systemd driver.
        from reference_runtime.errors import SpecError

        raise SpecError(f"linux.cgroupsPath {configured!r}: systemd cgroup paths need "
                        "--systemd-cgroup, which this runtime does not support")  # fmt: skip
    if configured.startswith("/"):
        return os.path.normpath(configured)
    return os.path.normpath(f"{DEFAULT_PARENT}/{configured}")


# Files a delegated cgroup hands over besides its directory, when the kernel does not list
# them in /sys/kernel/cgroup/delegate (config-linux.md, cgroup ownership; cgroup-v2.rst
# "Delegation Containment").
DELEGATE_LIST = "/sys/kernel/cgroup/delegate"
DELEGATE_FALLBACK = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def _map_id(container_id: int, mappings: list[tuple[int, int, int]]) -> int | None:
    for inside, outside, size in mappings:
        if inside <= container_id < inside + size:
            return outside + container_id - inside
    return None


def delegation_owner(cfg: Any) -> tuple[int, int] | None:
    """The host uid/gid the container's v2 cgroup is chowned to, or None (config-linux.md,
    cgroup ownership): only with a new user and a new cgroup namespace, and a read-write
    cgroup mount at /sys/fs/cgroup (source "cgroup"); to the ids process.user maps to."""
    created = {ns.type for ns in cfg.namespaces if ns.path is None}
    if not {"user", "cgroup"} <= created or cfg.process is None:
        return None
    rw_mount = any(
        m.destination.rstrip("/") == "/sys/fs/cgroup" and m.type == "cgroup"
        and m.source == "cgroup" and "ro" not in (m.options or [])
        for m in cfg.mounts
    )  # fmt: skip
    if not rw_mount:
        return None
    uid = _map_id(cfg.process.uid, cfg.uid_mappings)
    gid = _map_id(cfg.process.gid, cfg.gid_mappings)
    return None if uid is None or gid is None else (uid, gid)


def delegated_files() -> list[str]:
    """What /sys/kernel/cgroup/delegate lists, or the three core files on a kernel without it."""
    try:
        with open(DELEGATE_LIST, encoding="ascii") as f:
            return f.read().split()
    except FileNotFoundError:
        return list(DELEGATE_FALLBACK)


def chown_delegated(path: str, owner: tuple[int, int], files: list[str]) -> None:
    """Hands ``path`` and the listed files in it to ``owner``; a listed file the cgroup lacks
    (its controller is not enabled there) is passed over, as config-linux.md requires."""
    for target in (path, *(f"{path}/{name}" for name in files)):
        try:
            os.chown(target, *owner)
        except FileNotFoundError:
            if target == path:
                raise SyscallError(2, "chown", target) from None
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "chown", target) from None


class Hierarchies:
    """The host's cgroup mounts: v1 hierarchies by name ("cpu,cpuacct"), and cgroup2."""

    __slots__ = ("v1", "v2")

    def __init__(self, v1: dict[str, str], v2: str | None) -> None:
        self.v1 = v1
        self.v2 = v2

    @property
    def mode(self) -> str:
        if self.v1:
            return "hybrid" if self.v2 else "v1"
        return "v2" if self.v2 else "none"


def parse_mountinfo(text: str) -> Hierarchies:
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rest = right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        fstype, options = rest[0], rest[2].split(",")
        if fstype == "cgroup2":
            v2 = v2 or point
        elif fstype == "cgroup":
            # Named by its mount point ("cpu,cpuacct", "systemd"), as the container will see it.
            name = os.path.basename(point) or ",".join(o for o in options if o not in ("rw", "ro"))
            v1.setdefault(name, point)
    return Hierarchies(v1, v2)


def probe() -> Hierarchies:
    """The host's layout. ``BULKHEAD_RUNTIME_CGROUP=v2`` makes a hybrid host look like a v2 one
    (only its cgroup2 mount is used): how the v2 manager is tested for real on such a host."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        found = parse_mountinfo(f.read())
    if os.environ.get("BULKHEAD_RUNTIME_CGROUP") == "v2" and found.v2:
        return Hierarchies({}, found.v2)
    return found


_write = write_file


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "read", path) from None


def _makedirs(path: str, made: list[str], before_mkdir: Any = None) -> None:
    """mkdir -p, remembering (in ``made``) each directory this call created."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        _makedirs(parent, made, before_mkdir)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "mkdir", path) from None
    made.append(path)
    if before_mkdir is not None:
        before_mkdir(path)


def _has_children(path: str) -> bool:
    try:
        return any(entry.is_dir(follow_symlinks=False) for entry in os.scandir(path))
    except OSError:
        return False


def remove_dirs(dirs: list[str], timeout: float = 5.0) -> None:
    """rmdir each (deepest first); EBUSY is retried: a killed process leaves asynchronously.

    A parent this container made (``/bulkhead-runtime`` for the first container of a relative
    cgroupsPath) may since hold other containers' cgroups: rmdir of a cgroup with children is
    EBUSY for as long as they live (cgroup-v2.rst, "Removing a cgroup"), so such a parent is
    left to them, not waited for."""
    deadline = time.monotonic() + timeout
    for path in sorted(dirs, key=len, reverse=True):
        shared_parent = any(other.startswith(path + "/") for other in dirs)
        delay = 0.001
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno == 16 and shared_parent and _has_children(path):
                    break
                if exc.errno != 16 or time.monotonic() > deadline:  # EBUSY: tasks still there
                    raise SyscallError(exc.errno or 0, "rmdir", path) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


def attach_devices(path: str, program: bytes) -> None:
    """Loads the device program and attaches it to the cgroup at ``path``: from then on every
    open and mknod of a device node by its processes asks the program (cgroup-v2.rst, "Device
    controller"). The cgroup holds the program; removing the cgroup releases it."""
    from reference_runtime.linux import bpf

    fd = bpf.load_device_program(program)
    try:
        bpf.attach_device_program(path, fd)
    finally:
        os.close(fd)


class Manager:
    """What the lifecycle needs from cgroups. ``dirs`` is what delete must remove."""

    version = "none"

    def __init__(self) -> None:
        self.dirs: list[str] = []  # every directory created, for removal
        self.paths: dict[str, str] = {}  # hierarchy name → this container's directory
        # Host uid/gid to hand the cgroup to (cgroup v2 only; see delegation_owner).
        self.owner: tuple[int, int] | None = None

    def writes(self, resources: dict[str, Any]) -> list[Write]:
        return []

    def create(self, resources: dict[str, Any]) -> None:
        """Makes the directories and applies the limits; undoes itself if that fails."""

    def join(self, pid: int) -> None:
        for path in self.paths.values():
            _write(path + "/cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        for path in self.paths.values():
            try:
                return [int(x) for x in _read(path + "/cgroup.procs").split()]
            except SyscallError:
                continue
        return []

    def destroy(self) -> None:
        remove_dirs(self.dirs)


class NullManager(Manager):
    pass


class V1Manager(Manager):
    version = "v1"

    def __init__(self, hierarchies: Hierarchies, path: str) -> None:
        super().__init__()
        self.hierarchies = hierarchies
        for name, mount in hierarchies.v1.items():
            self.paths[name] = mount + path
        if hierarchies.v2:
            self.paths["unified"] = hierarchies.v2 + path

    def writes(self, resources: dict[str, Any]) -> list[Write]:
        from reference_runtime.cgroups.mapping import v1_writes

        return v1_writes(resources)

    def _controller_dir(self, controller: str) -> str | None:
        for name, path in self.paths.items():
            if name != "unified" and controller in name.split(","):
                return path
        return None

    def create(self, resources: dict[str, Any]) -> None:
        writes = self.writes(resources)
        try:
            for name, path in self.paths.items():
                # A new v1 cpuset starts with no cpus and no mems, and refuses tasks until
                # both are set (cgroup-v1/cpusets.rst): copy them down from the parent.
                hook = _inherit_cpuset if "cpuset" in name.split(",") else None
                _makedirs(path, self.dirs, hook)
            for w in writes:
                target = self._controller_dir(w.controller)
                if target is None:
                    from reference_runtime.errors import SpecError

                    raise SpecError(f"linux.resources: the {w.controller} controller is not "
                                    f"mounted on this host (for {w.file})")  # fmt: skip
                _write(_target(target, w.file), w.value)
        except BaseException:
            self.destroy()
            raise


def _inherit_cpuset(path: str) -> None:
    parent = os.path.dirname(path)
    for file in ("cpuset.cpus", "cpuset.mems"):
        value = _read(f"{parent}/{file}").strip()
        if not value and os.path.exists(f"{os.path.dirname(parent)}/{file}"):
            # A parent the container was given, made by someone else and left empty: it
            # would refuse our tasks too; fill it from its own parent (as runc does).
            _inherit_cpuset(parent)
            value = _read(f"{parent}/{file}").strip()
        _write(f"{path}/{file}", value)


class V2Manager(Manager):
    version = "v2"

    def __init__(self, hierarchies: Hierarchies, path: str) -> None:
        super().__init__()
        assert hierarchies.v2 is not None
        self.mount = hierarchies.v2
        self.paths["unified"] = self.mount + path

    def writes(self, resources: dict[str, Any]) -> list[Write]:
        from reference_runtime.cgroups.mapping import v2_writes

        return v2_writes(resources)

    def create(self, resources: dict[str, Any]) -> None:
        from reference_runtime.cgroups.mapping import device_program

        writes = self.writes(resources)
        # Encoded (and the rules validated) before anything is made.
        program = device_program(resources)
        path = self.paths["unified"]
        try:
            _makedirs(path, self.dirs)
            # cgroup.* files belong to the core, which every cgroup has (cgroup-v2.rst).
            needed = sorted({w.controller for w in writes} - {"cgroup"})
            if needed:
                # cgroup-v2.rst "Enabling and Disabling": each ancestor below the mount must
                # delegate the controller to its children.
                available = _read(self.mount + "/cgroup.controllers").split()
                missing = [c for c in needed if c not in available]
                if missing:
                    from reference_runtime.errors import SpecError

                    raise SpecError("linux.resources: cgroup v2 controllers not available "
                                    f"here: {', '.join(missing)}")  # fmt: skip
                current = self.mount
                for part in os.path.relpath(path, self.mount).split("/"):
                    _write(current + "/cgroup.subtree_control",
                           " ".join("+" + c for c in needed))  # fmt: skip
                    current += "/" + part
            for w in writes:
                _write(_target(path, w.file), w.value)
            if program is not None:
                attach_devices(path, program)
            if self.owner is not None:
                chown_delegated(path, self.owner, delegated_files())
        except BaseException:
            self.destroy()
            raise


def manager_for(hierarchies: Hierarchies, path: str) -> Manager:
    mode = hierarchies.mode
    if mode in ("v1", "hybrid"):
        return V1Manager(hierarchies, path)
    if mode == "v2":
        return V2Manager(hierarchies, path)
    return NullManager()


def restore(version: str, paths: dict[str, str], dirs: list[str]) -> Manager:
    """The manager of an existing container, from what its state recorded."""
    manager: Manager = NullManager()
    manager.version = version
    manager.paths = dict(paths)
    manager.dirs = list(dirs)
    return manager
