"""Idmapped mounts (config.md "Mounts": uidMappings/gidMappings, the idmap and ridmap options).

Three parts, each at its time of the create (design.md §2):

- ``check_mount`` / ``check_userns``, while config.json is validated (pure): which mounts are
  idmapped, and whether the mapping they ask for can be made at all; nothing has touched the
  kernel yet.
- ``idmap_for``, while the rootfs is planned (pure): the mapping each mount gets. Its own
  uidMappings/gidMappings when it has them; otherwise (config.md: the runtime MAY use the
  container's user namespace mapping, which this runtime does) the container's: the maps of a
  new user namespace, or the file of a joined one.
- ``open_trees``, on the host before the first fork: for each such mount a detached clone of
  the source with the mapping applied (linux/mount_api.py). mount_setattr(2) wants a caller
  privileged over the filesystem's user namespace, which the container's root is not; the init
  inherits the descriptors and moves each mount into place (rootfs/plan.py ``MountStep``).

Only bind mounts are idmapped here: features-linux.md allows such a partial implementation, and
anything else is refused before the kernel is touched (runtime.md: an error, never a mount
made without its mapping).
"""

from __future__ import annotations

from reference_runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from reference_runtime.linux.system import System
    from reference_runtime.rootfs.plan import MountStep, Step
    from reference_runtime.spec.model import Config, Mount

Maps = list[tuple[int, int, int]]  # (containerID, hostID, size), as config-linux.md writes them

MODES = ("idmap", "ridmap")
# uid_map/gid_map take at most this many lines (kernel/user_namespace.c UID_GID_MAP_MAX_EXTENTS,
# Linux 4.15; user_namespaces(7)).
MAX_EXTENTS = 340
# Ids are 32-bit and (uid_t)-1 is no id: an extent must end at or below it without wrapping
# (kernel/user_namespace.c map_write: "first + count <= first" is refused).
ID_LIMIT = 2**32 - 1


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def check_maps(maps: Maps, what: str) -> None:
    """Refuses what the kernel would refuse when the maps are written (map_write in
    kernel/user_namespace.c): too many lines, an extent past the last id, extents that overlap
    on either side."""
    if len(maps) > MAX_EXTENTS:
        raise SpecError(f"{what}: {len(maps)} mappings; the kernel takes at most {MAX_EXTENTS}")
    for i, (inside, outside, size) in enumerate(maps):
        for name, first in (("containerID", inside), ("hostID", outside)):
            if first + size > ID_LIMIT:
                raise SpecError(f"{what}[{i}]: {name} {first} + size {size} goes past the last "
                                f"id ({ID_LIMIT - 1})")  # fmt: skip
        for j in range(i):
            other_in, other_out, other_size = maps[j]
            if _overlap((inside, size), (other_in, other_size)):
                raise SpecError(f"{what}[{i}] and [{j}]: the containerID ranges overlap")
            if _overlap((outside, size), (other_out, other_size)):
                raise SpecError(f"{what}[{i}] and [{j}]: the hostID ranges overlap")


def check_mount(mount: Mount, index: int, uids: Maps, gids: Maps, bind: bool) -> None:
    """Sets ``mount.idmap`` and its maps, or refuses the mount (config.md "POSIX-platform
    Mounts" and the idmap/ridmap rows of "Linux mount options")."""
    what = f"mounts[{index}] ({mount.destination})"
    modes = {o for o in mount.options if o in MODES}
    if len(modes) > 1:
        raise SpecError(f"{what}: idmap and ridmap are both given; one says whether the mapping "
                        "is recursive")  # fmt: skip
    if bool(uids) != bool(gids):
        # config.md: "If specified, it MUST be specified along with" the other.
        given, missing = ("uidMappings", "gidMappings") if uids else ("gidMappings", "uidMappings")
        raise SpecError(f"{what}: {given} without {missing}; config.md wants both")
    # Mappings without either option (config.md only SHOULDs one) are still the mount's mapping:
    # applied, to the top mount as "idmap" does.
    mode = modes.pop() if modes else "idmap"
    if not bind:
        raise SpecError(f"{what}: {mode}: only bind mounts can be idmapped by this runtime, not "
                        f"a {mount.type or 'typeless'} mount")  # fmt: skip
    if "remount" in mount.options:
        # mount_setattr(2): only a detached mount takes a mapping, never one already in place.
        raise SpecError(f"{what}: {mode}: a remount cannot be idmapped")
    check_maps(uids, f"mounts[{index}].uidMappings")
    check_maps(gids, f"mounts[{index}].gidMappings")
    mount.idmap = mode
    mount.uid_mappings = uids
    mount.gid_mappings = gids


def check_userns(cfg: Config) -> None:
    """An idmapped mount without mappings of its own needs the container's user namespace."""
    if cfg.namespace("user") is not None:
        return
    for i, mount in enumerate(cfg.mounts):
        if mount.idmap and not mount.uid_mappings:
            # config.md idmap/ridmap: "If there are no uidMappings and gidMappings specified
            # and the container isn't using user namespaces, an error MUST be returned."
            raise SpecError(f"mounts[{i}] ({mount.destination}): {mount.idmap} without "
                            "uidMappings/gidMappings needs a user namespace whose mapping it "
                            "can take, and the container has none")  # fmt: skip


class IdMap:
    """The mapping one bind mount gets, and (once ``open_trees`` ran) its detached mount."""

    __slots__ = ("gids", "recursive", "source_kind", "tree", "uids", "userns_path")

    def __init__(self, uids: Maps, gids: Maps, *, recursive: bool,
                 userns_path: str | None = None) -> None:  # fmt: skip
        self.uids = uids
        self.gids = gids
        self.recursive = recursive  # ridmap: every mount of the tree (mount_setattr AT_RECURSIVE)
        self.userns_path = userns_path  # a joined user namespace whose mapping is taken
        self.tree = -1  # the detached, idmapped mount (open_tree(2)), inherited by the init
        self.source_kind = ""  # "dir" or "file", as the host saw the source

    def describe(self) -> str:
        how = "ridmap" if self.recursive else "idmap"
        if self.userns_path is not None:
            return f"{how} as user namespace {self.userns_path}"
        maps = [" ".join(f"{a}:{b}:{n}" for a, b, n in m) for m in (self.uids, self.gids)]
        return f"{how} uids {maps[0]} gids {maps[1]}"


def idmap_for(mount: Mount, cfg: Config) -> IdMap:
    """The mapping of an idmapped ``mount``: its own, else the container's (config.md MAY)."""
    recursive = mount.idmap == "ridmap"
    if mount.uid_mappings:
        return IdMap(mount.uid_mappings, mount.gid_mappings, recursive=recursive)
    user = cfg.namespace("user")
    assert user is not None, "check_userns refuses an idmap without mappings or user namespace"
    if user.path is not None:
        return IdMap([], [], recursive=recursive, userns_path=user.path)
    return IdMap(cfg.uid_mappings, cfg.gid_mappings, recursive=recursive)


def _idmapped(steps: Sequence[Step]) -> list[tuple[MountStep, IdMap]]:
    from reference_runtime.rootfs.plan import MountStep

    return [(s, s.idmap) for s in steps if isinstance(s, MountStep) and s.idmap is not None]


def open_trees(steps: Sequence[Step], system: System) -> None:
    """Makes the detached, idmapped mount of every idmapped step, on the host (the runtime's
    own mount namespace and user namespace), before the container's processes exist.

    One user namespace per distinct mapping, closed again at the end: each mount keeps a
    reference to the namespace it was given (mount_setattr(2)).
    """
    userns: dict[object, int] = {}
    try:
        for step, idmap in _idmapped(steps):
            kind = system.stat_kind(step.source)
            if kind is None:
                raise SpecError(f"mount {step.mount.destination}: bind source {step.source} "
                                "does not exist")  # fmt: skip
            key: object = idmap.userns_path or (tuple(idmap.uids), tuple(idmap.gids))
            fd = userns.get(key)
            if fd is None:
                if idmap.userns_path is not None:
                    fd = system.open_userns(idmap.userns_path)
                else:
                    fd = system.mapping_userns(idmap.uids, idmap.gids)
                userns[key] = fd
            # An rbind clones the mounts below the source too; whether they get the mapping
            # is the idmap/ridmap choice (mount_setattr AT_RECURSIVE).
            idmap.tree = system.open_tree(step.source, recursive=step.opts.recursive)
            idmap.source_kind = kind
            system.set_idmap(idmap.tree, fd, recursive=idmap.recursive, what=step.source)
    except BaseException:
        close_trees(steps, system)
        raise
    finally:
        for fd in userns.values():
            system.close(fd)


def close_trees(steps: Sequence[Step], system: System) -> None:
    """Closes the runtime's copies of the detached mounts (idempotent: the rollback may run it
    after the normal path did)."""
    for _, idmap in _idmapped(steps):
        if idmap.tree >= 0:
            system.close(idmap.tree)
            idmap.tree = -1
