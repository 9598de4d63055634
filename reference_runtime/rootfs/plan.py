"""The rootfs as a plan: a list of steps, built from the config alone, executed in order.

``plan_rootfs`` is pure (it only reads the config and the cgroup directories to expose), so the
whole sequence can be unit-tested and printed with ``--debug``. Each step has ``describe()`` and
``execute(system)``; ``system`` is the kernel boundary (linux/system.py) or a recording fake.

The order follows config-linux.md and what runc/crun do: make ``/`` a slave (so nothing done
here propagates to the host), bind the rootfs onto itself (pivot_root needs a mount point),
mounts in config order, default devices and symlinks, pivot_root, then — with the container's
own paths — read-only paths, masked paths and the read-only root.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError
from reference_runtime.linux import constants as c
from reference_runtime.rootfs.options import PROPAGATION, REMOUNT_FLAGS, parse_options
from reference_runtime.rootfs.paths import resolve_in_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.linux.system import System
    from reference_runtime.rootfs.idmap import IdMap
    from reference_runtime.rootfs.options import MountOptions
    from reference_runtime.spec.model import Config, Mount

S_IFCHR = 0o020000
S_IFBLK = 0o060000
S_IFIFO = 0o010000

# config-linux.md "Default Devices": (path, major, minor), all character devices, mode 0666.
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)  # fmt: skip
# config-linux.md "Dev symbolic links".
DEFAULT_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)  # fmt: skip


def _makedirs(system: System, root: str, host_path: str) -> None:
    """Creates the missing directories of ``host_path`` below ``root`` (already resolved)."""
    rel = os.path.relpath(host_path, root)
    if rel == ".":
        return
    current = root
    for part in rel.split("/"):
        current = current + "/" + part
        if system.lstat_kind(current) is None:
            system.mkdir(current, 0o755)


class Step:
    """One thing done to build the rootfs."""

    def describe(self) -> str:
        raise NotImplementedError

    def execute(self, system: System) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class SetPropagation(Step):
    def __init__(self, target: str, flags: int) -> None:
        self.target = target
        self.flags = flags

    def describe(self) -> str:
        return f"propagation {self.flags:#x} on {self.target}"

    def execute(self, system: System) -> None:
        system.mount(None, self.target, None, self.flags, None)


class BindRootfs(Step):
    def __init__(self, root: str) -> None:
        self.root = root

    def describe(self) -> str:
        return f"bind {self.root} onto itself"

    def execute(self, system: System) -> None:
        system.mount(self.root, self.root, None, c.MS_BIND | c.MS_REC, None)


class MountStep(Step):
    """One entry of ``mounts``, at its destination resolved inside the rootfs."""

    def __init__(self, root: str, mount: Mount, opts: MountOptions, source: str,
                 userns: bool = False) -> None:  # fmt: skip
        self.root = root
        self.mount = mount
        self.opts = opts
        self.source = source  # for binds: absolute host path
        self.userns = userns
        self.idmap: IdMap | None = None  # an idmapped bind (rootfs/idmap.py)

    def describe(self) -> str:
        kind = "bind" if self.opts.bind else self.mount.type
        text = f"mount {kind} {self.source} on {self.mount.destination} ({self.opts.describe()})"
        return text if self.idmap is None else f"{text} {self.idmap.describe()}"

    def execute(self, system: System) -> None:
        dest = resolve_in_root(self.root, self.mount.destination, system.readlink)
        if self.opts.bind:
            # An idmapped source was seen (and cloned) on the host, where it is sure to be
            # reachable; the container's root may not even search its parents.
            idmap = self.idmap
            kind = idmap.source_kind if idmap is not None else system.stat_kind(self.source)
            if kind is None:
                raise SpecError(f"mount {self.mount.destination}: bind source {self.source} "
                                "does not exist")  # fmt: skip
            if kind == "dir":
                _makedirs(system, self.root, dest)
            else:
                _makedirs(system, self.root, os.path.dirname(dest))
                if system.lstat_kind(dest) is None:
                    system.touch(dest)
            remount = bool(self.opts.flags & c.MS_REMOUNT)
            if not remount:
                # With "remount" the entry changes the bind already at the destination
                # (mount(2) MS_REMOUNT): nothing new is bound on top of it.
                flags = c.MS_BIND | (c.MS_REC if self.opts.recursive else 0)
                target, fd = system.pin(self.root, dest)
                try:
                    if self.idmap is not None:
                        self._move_idmapped(system, dest, fd)
                    else:
                        system.mount(self.source, target, None, flags, None)
                finally:
                    system.unpin(fd)
            extra = self.opts.flags & REMOUNT_FLAGS
            if extra or remount:
                if self.userns:
                    # mount_namespaces(7): in a user namespace the source's nosuid, nodev and
                    # noexec are locked; a remount that drops them is refused with EPERM.
                    locked = c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_RDONLY
                    extra |= system.statvfs_flags(dest) & locked
                # mount(2): MS_BIND ignores the other flags; a remount applies them.
                system.mount(None, dest, None, c.MS_BIND | c.MS_REMOUNT | extra, None)
        else:
            _makedirs(system, self.root, dest)
            data = ",".join(self.opts.data) or None
            target, fd = system.pin(self.root, dest)
            try:
                system.mount(self.source, target, self.mount.type or None, self.opts.flags, data)
            finally:
                system.unpin(fd)
        if self.opts.attr_set or self.opts.attr_clr:
            # config.md's r* options: every mount of the (r)bind tree, not just its top.
            system.mount_setattr(dest, self.opts.attr_set, self.opts.attr_clr)
        for flag in self.opts.propagation:
            system.mount(None, dest, None, flag, None)

    def _move_idmapped(self, system: System, dest: str, pinned: int) -> None:
        """move_mount(2) of the detached mount the runtime made on the host; then the init's
        copy of its descriptor goes (nothing of the host's tree stays open in the container)."""
        assert self.idmap is not None
        tree = self.idmap.tree
        if tree < 0:
            raise SpecError(f"mount {self.mount.destination}: the idmapped mount was not made")
        try:
            system.move_mount(tree, dest, pinned)
        finally:
            system.close(tree)
            self.idmap.tree = -1


class CgroupMount(Step):
    """``type: cgroup``: the container's own cgroup directories, as runc does.

    On a v1 (or hybrid) host: a tmpfs at the destination and, below it, each hierarchy's
    directory of this container bind-mounted (never the host's whole hierarchy). On a v2 host
    with a cgroup namespace: a fresh cgroup2 mount, whose root is the namespace's root.
    """

    def __init__(self, root: str, mount: Mount, flags: int, sources: dict[str, str],
                 cgroup2: bool) -> None:  # fmt: skip
        self.root = root
        self.mount = mount
        self.flags = flags
        self.sources = sources  # hierarchy name (e.g. "cpu,cpuacct") → host directory
        self.cgroup2 = cgroup2

    def describe(self) -> str:
        if self.cgroup2:
            return f"mount cgroup2 on {self.mount.destination} (flags={self.flags:#x})"
        names = ",".join(sorted(self.sources))
        return f"mount cgroup v1 {names} on {self.mount.destination} (flags={self.flags:#x})"

    def execute(self, system: System) -> None:
        dest = resolve_in_root(self.root, self.mount.destination, system.readlink)
        _makedirs(system, self.root, dest)
        if self.cgroup2 and "" in self.sources:
            # No cgroup namespace: a fresh cgroup2 mount would show the host's whole tree, so
            # the container's own directory is bound there instead (runc does the same).
            system.mount(self.sources[""], dest, None, c.MS_BIND | c.MS_REC, None)
            system.mount(None, dest, None,
                         c.MS_BIND | c.MS_REMOUNT | (self.flags & REMOUNT_FLAGS), None)  # fmt: skip
            return
        if self.cgroup2:
            system.mount("cgroup2", dest, "cgroup2", self.flags, None)
            return
        system.mount("tmpfs", dest, "tmpfs", self.flags & ~c.MS_RDONLY, "mode=755")
        for name, source in sorted(self.sources.items()):
            target = dest + "/" + name
            system.mkdir(target, 0o755)
            system.mount(source, target, None, c.MS_BIND | c.MS_REC, None)
            system.mount(None, target, None,
                         c.MS_BIND | c.MS_REMOUNT | (self.flags & REMOUNT_FLAGS), None)  # fmt: skip
            for controller in name.split(","):
                if controller != name and not controller.startswith("name="):
                    system.symlink(name, dest + "/" + controller)
        if self.flags & c.MS_RDONLY:
            system.mount(None, dest, None, c.MS_REMOUNT | self.flags, "mode=755")


class MakeDevice(Step):
    def __init__(self, root: str, path: str, kind: str, major: int, minor: int, mode: int,
                 uid: int, gid: int) -> None:  # fmt: skip
        self.root = root
        self.path = path
        self.kind = kind
        self.major = major
        self.minor = minor
        self.mode = mode
        self.uid = uid
        self.gid = gid

    def describe(self) -> str:
        return f"mknod {self.path} {self.kind} {self.major}:{self.minor} mode {self.mode:o}"

    def execute(self, system: System) -> None:
        dest = resolve_in_root(self.root, self.path, system.readlink)
        _makedirs(system, self.root, os.path.dirname(dest))
        kind = {"c": S_IFCHR, "u": S_IFCHR, "b": S_IFBLK, "p": S_IFIFO}[self.kind]
        found = system.node(dest)
        if found is not None:
            # config-linux.md "Devices": a file already at the path that is not the requested
            # device is an error; the very device (shipped by the image, or bound by an earlier
            # mount) is left as it is: it may be the host's node, never ours to chmod.
            numbers = (0, 0) if kind == S_IFIFO else (self.major, self.minor)
            if found[0] != kind or (kind != S_IFIFO and found[1:] != numbers):
                raise SpecError(f"device {self.path}: a file that is not the {self.kind} "
                                f"{self.major}:{self.minor} device is already there")  # fmt: skip
            return
        system.mknod(dest, kind | self.mode, self.major, self.minor)
        system.chmod(dest, self.mode)  # mknod(2) applies the umask; the spec's mode is exact
        if self.uid or self.gid:
            system.chown(dest, self.uid, self.gid)


class BindDevice(Step):
    """In a user namespace mknod(2) is refused: bind the host's device node instead (as runc)."""

    def __init__(self, root: str, path: str, host_path: str) -> None:
        self.root = root
        self.path = path
        self.host_path = host_path

    def describe(self) -> str:
        return f"bind device {self.host_path} onto {self.path}"

    def execute(self, system: System) -> None:
        dest = resolve_in_root(self.root, self.path, system.readlink)
        _makedirs(system, self.root, os.path.dirname(dest))
        if system.lstat_kind(dest) is None:
            system.touch(dest)
        system.mount(self.host_path, dest, None, c.MS_BIND, None)


class Symlink(Step):
    def __init__(self, root: str, target: str, link: str) -> None:
        self.root = root
        self.target = target
        self.link = link

    def describe(self) -> str:
        return f"symlink {self.link} -> {self.target}"

    def execute(self, system: System) -> None:
        # The link's own name is not followed: one left by an earlier, failed create in the
        # same rootfs (or shipped by the image) points into /proc, which is not mounted here.
        parent, name = os.path.split(self.link)
        dest = resolve_in_root(self.root, parent, system.readlink) + "/" + name
        system.symlink(self.target, dest)


class PivotRoot(Step):
    """pivot_root(".", ".") then detach the old root stacked below (runc's way, pivot_root(2)):
    no directory for the old root is needed inside the container."""

    def __init__(self, root: str) -> None:
        self.root = root

    def describe(self) -> str:
        return f"pivot_root into {self.root}"

    def execute(self, system: System) -> None:
        old_root = system.open_dir("/")
        try:
            system.chdir(self.root)
            system.pivot_root(".", ".")
            # The old root may be shared with the host's mounts: make it a slave first so the
            # detach below does not propagate back (pivot_root(2) NOTES). From inside the old
            # root (stacked on the new one), as runc does: "." at the new root's directory
            # names the new root for mount(2), and MS_REC would then reach the container's
            # own mounts (a "shared" mount option would be lost).
            system.fchdir(old_root)
            system.mount(None, ".", None, c.MS_SLAVE | c.MS_REC, None)
            system.umount(".", c.MNT_DETACH)
        finally:
            system.close(old_root)
        system.chdir("/")


class Sysctl(Step):
    """One linux.sysctl entry, written through the container's own /proc/sys (after pivot)."""

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value

    def describe(self) -> str:
        return f"sysctl {self.key} = {self.value}"

    def execute(self, system: System) -> None:
        system.write_procfs("/proc/sys/" + self.key.replace(".", "/"), self.value)


class MoveRoot(PivotRoot):
    """``--no-pivot``: move the rootfs onto / and chroot into it (for ramdisk roots, where
    pivot_root(2) fails with EINVAL). Weaker: the old root stays reachable to a process that
    can escape a chroot, which is why pivot_root is the default."""

    def describe(self) -> str:
        return f"move {self.root} onto / and chroot (no pivot_root)"

    def execute(self, system: System) -> None:
        system.chdir(self.root)
        system.mount(self.root, "/", None, c.MS_MOVE, None)
        system.chroot(".")
        system.chdir("/")


class ReadonlyPath(Step):
    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"read-only {self.path}"

    def execute(self, system: System) -> None:
        if system.lstat_kind(self.path) is None:
            return  # config-linux.md: paths that do not exist are skipped
        system.mount(self.path, self.path, None, c.MS_BIND | c.MS_REC, None)
        # A bind remount keeps nosuid/nodev/noexec only if asked again (they may be locked).
        keep = system.statvfs_flags(self.path) & (c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC)
        system.mount(None, self.path, None,
                     c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_REC | keep, None)  # fmt: skip


class MaskPath(Step):
    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"mask {self.path}"

    def execute(self, system: System) -> None:
        kind = system.lstat_kind(self.path)
        if kind is None:
            return  # config-linux.md: paths that do not exist are skipped
        if kind == "dir":
            system.mount("tmpfs", self.path, "tmpfs", c.MS_RDONLY, "size=0k,mode=755")
        else:
            system.mount("/dev/null", self.path, None, c.MS_BIND, None)


class ReadonlyRoot(Step):
    def describe(self) -> str:
        return "remount / read-only"

    def execute(self, system: System) -> None:
        keep = system.statvfs_flags("/") & (c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC)
        system.mount(None, "/", None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | keep, None)


def plan_rootfs(
    cfg: Config, cgroup_sources: dict[str, str], cgroup2: bool, *, no_pivot: bool = False
) -> list[Step]:
    userns = cfg.namespace("user") is not None
    """Every step that builds the container's filesystem, in order.

    ``cgroup_sources`` maps v1 hierarchy names to this container's cgroup directories (for a
    ``cgroup`` mount); ``cgroup2`` says to mount cgroup2 instead.
    """
    root = cfg.root_path
    # Always a slave first, whatever rootfsPropagation says: nothing done below may reach the
    # host, a shared root would make pivot_root(2) fail with EINVAL, and an unbindable one the
    # bind of the rootfs onto itself.
    steps: list[Step] = [SetPropagation("/", c.MS_SLAVE | c.MS_REC), BindRootfs(root)]
    dev_bound = False
    for mount in cfg.mounts:
        opts = parse_options(mount.options, mount.type)
        if mount.type == "cgroup" and not opts.bind:
            steps.append(CgroupMount(root, mount, opts.flags, cgroup_sources, cgroup2))
            continue
        source = mount.source
        if opts.bind:
            # config.md: a relative bind source is relative to the bundle.
            source = os.path.normpath(os.path.join(cfg.bundle, source))
            if mount.destination == "/dev":
                dev_bound = True
        step = MountStep(root, mount, opts, source, userns)
        if mount.idmap:
            from reference_runtime.rootfs.idmap import idmap_for

            step.idmap = idmap_for(mount, cfg)
        steps.append(step)
    if not dev_bound:
        for path, major, minor in DEFAULT_DEVICES:
            if userns:
                steps.append(BindDevice(root, path, path))
            else:
                steps.append(MakeDevice(root, path, "c", major, minor, 0o666, 0, 0))
        for target, link in DEFAULT_SYMLINKS:
            steps.append(Symlink(root, target, link))
    for dev in cfg.devices:
        if userns:
            steps.append(BindDevice(root, dev.path, dev.path))
        else:
            steps.append(MakeDevice(root, dev.path, dev.type, dev.major, dev.minor,
                                    dev.file_mode, dev.uid, dev.gid))  # fmt: skip
    steps.append(MoveRoot(root) if no_pivot else PivotRoot(root))
    if cfg.rootfs_propagation:
        # config-linux.md "Rootfs Mount Propagation", applied to the container's own root once
        # it is "/" (runc does the same): "shared" is then a peer group of the container's.
        steps.append(SetPropagation("/", PROPAGATION[cfg.rootfs_propagation]))
    # Before the read-only paths: /proc/sys is usually one of them (runc's order too).
    steps.extend(Sysctl(key, value) for key, value in cfg.sysctl.items())
    steps.extend(ReadonlyPath(p) for p in cfg.readonly_paths)
    steps.extend(MaskPath(p) for p in cfg.masked_paths)
    if cfg.root_readonly:
        steps.append(ReadonlyRoot())
    return steps
