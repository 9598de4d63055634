"""Mount options (config.md "Mounts", mount(8)) → mount(2) flags, propagation and fs data.

Pure: no syscalls. Options that are neither flags nor propagation types are filesystem data
(``size=64k``, ``mode=755``) passed to mount(2) as its ``data`` argument.
"""

from __future__ import annotations

from reference_runtime.linux import constants as c

# option → (clears the flag?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, c.MS_RDONLY), "rw": (True, c.MS_RDONLY),
    "nosuid": (False, c.MS_NOSUID), "suid": (True, c.MS_NOSUID),
    "nodev": (False, c.MS_NODEV), "dev": (True, c.MS_NODEV),
    "noexec": (False, c.MS_NOEXEC), "exec": (True, c.MS_NOEXEC),
    "sync": (False, c.MS_SYNCHRONOUS), "async": (True, c.MS_SYNCHRONOUS),
    "dirsync": (False, c.MS_DIRSYNC),
    "remount": (False, c.MS_REMOUNT),
    "mand": (False, c.MS_MANDLOCK), "nomand": (True, c.MS_MANDLOCK),
    "atime": (True, c.MS_NOATIME), "noatime": (False, c.MS_NOATIME),
    "diratime": (True, c.MS_NODIRATIME), "nodiratime": (False, c.MS_NODIRATIME),
    "relatime": (False, c.MS_RELATIME), "norelatime": (True, c.MS_RELATIME),
    "strictatime": (False, c.MS_STRICTATIME), "nostrictatime": (True, c.MS_STRICTATIME),
    "lazytime": (False, c.MS_LAZYTIME), "nolazytime": (True, c.MS_LAZYTIME),
    "nosymfollow": (False, c.MS_NOSYMFOLLOW), "symfollow": (True, c.MS_NOSYMFOLLOW),
    "silent": (False, c.MS_SILENT), "loud": (True, c.MS_SILENT),
    "iversion": (False, c.MS_I_VERSION), "noiversion": (True, c.MS_I_VERSION),
    # mount(8): "defaults" stands for rw, suid, dev, exec, async: what a new mount has anyway,
    # so it changes nothing (nor does it undo an earlier option, as in mount(8)).
    "defaults": (False, 0),
}  # fmt: skip

PROPAGATION: dict[str, int] = {
    "private": c.MS_PRIVATE, "rprivate": c.MS_PRIVATE | c.MS_REC,
    "shared": c.MS_SHARED, "rshared": c.MS_SHARED | c.MS_REC,
    "slave": c.MS_SLAVE, "rslave": c.MS_SLAVE | c.MS_REC,
    "unbindable": c.MS_UNBINDABLE, "runbindable": c.MS_UNBINDABLE | c.MS_REC,
}  # fmt: skip

# config.md's recursive options, applied with mount_setattr(2) AT_RECURSIVE to every mount below:
# option → (attributes to set, attributes to clear).
_ATIME = c.MOUNT_ATTR__ATIME
RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (c.MOUNT_ATTR_RDONLY, 0), "rrw": (0, c.MOUNT_ATTR_RDONLY),
    "rnosuid": (c.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, c.MOUNT_ATTR_NOSUID),
    "rnodev": (c.MOUNT_ATTR_NODEV, 0), "rdev": (0, c.MOUNT_ATTR_NODEV),
    "rnoexec": (c.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, c.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (c.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, c.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (c.MOUNT_ATTR_RELATIME, _ATIME), "rnorelatime": (c.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rnoatime": (c.MOUNT_ATTR_NOATIME, _ATIME), "ratime": (c.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rstrictatime": (c.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rnostrictatime": (c.MOUNT_ATTR_RELATIME, _ATIME),
    "rnosymfollow": (c.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, c.MOUNT_ATTR_NOSYMFOLLOW),
}  # fmt: skip

# Options runtimes understand that mean nothing to mount(2) (runc's tmpcopyup, crun's extras).
IGNORED = frozenset({"tmpcopyup", "notmpcopyup", "copy-symlink", "src-nofollow", "dest-nofollow"})
# config.md: idmap and ridmap "SHOULD NOT be passed to the underlying mount(2) call"; the mapping
# is made with mount_setattr(2) (rootfs/idmap.py).
IDMAP = frozenset({"idmap", "ridmap"})
# Flags that a bind mount only gets through a second, MS_REMOUNT call (mount(2) "MS_BIND").
REMOUNT_FLAGS = (
    c.MS_RDONLY | c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_NOATIME | c.MS_NODIRATIME
    | c.MS_RELATIME | c.MS_STRICTATIME | c.MS_NOSYMFOLLOW
)  # fmt: skip


class MountOptions:
    __slots__ = ("attr_clr", "attr_set", "bind", "data", "flags", "propagation", "recursive")

    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.bind = False
        self.recursive = False
        self.attr_set = 0  # mount_setattr(2) for the r* options
        self.attr_clr = 0

    def describe(self) -> str:
        parts = [f"flags={self.flags:#x}"]
        if self.bind:
            parts.append("rbind" if self.recursive else "bind")
        if self.propagation:
            parts.append("propagation=" + ",".join(f"{p:#x}" for p in self.propagation))
        if self.attr_set or self.attr_clr:
            parts.append(f"recursive set={self.attr_set:#x} clear={self.attr_clr:#x}")
        if self.data:
            parts.append("data=" + ",".join(self.data))
        return " ".join(parts)


def parse_options(options: list[str], mount_type: str = "") -> MountOptions:
    parsed = MountOptions()
    parsed.bind = mount_type == "bind"
    for option in options:
        if option in ("bind", "rbind"):
            parsed.bind = True
            parsed.recursive = parsed.recursive or option == "rbind"
        elif option in FLAGS:
            clear, flag = FLAGS[option]
            parsed.flags = parsed.flags & ~flag if clear else parsed.flags | flag
        elif option in RECURSIVE:
            set_, clr = RECURSIVE[option]
            # A later option wins over an earlier one; an atime mode keeps the whole atime
            # field in attr_clr, as mount_setattr(2) requires to change it.
            parsed.attr_clr = (parsed.attr_clr & ~set_) | clr
            parsed.attr_set = (parsed.attr_set & ~clr) | set_
        elif option in PROPAGATION:
            parsed.propagation.append(PROPAGATION[option])
        elif option in IGNORED or option in IDMAP:
            continue
        else:
            parsed.data.append(option)
    return parsed
