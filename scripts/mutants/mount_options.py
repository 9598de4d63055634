"""Mutants that get the mount options wrong (config.md "Mounts", its Linux mount options):
an option dropped or read the wrong way round, propagation ignored, a recursive option applied
to the top mount only, bind and rbind confused, remount made a new mount, filesystem data lost,
a relative destination taken from the process's cwd.

Each changes only the mounts a test adds after `runc spec`'s defaults; none reaches the host:
the propagation ones only ever drop or weaken a propagation option (a bind left as the runtime
makes it: a slave of the host's mount at most, which never sends back).
"""

from __future__ import annotations

from mutants import Call, config
from mutants.rootfs import DEFAULT_MOUNTS


def _added(cfg: dict) -> list[dict]:
    mounts = cfg.get("mounts", [])
    assert isinstance(mounts, list)
    return mounts[DEFAULT_MOUNTS:]


def _rewrite(cfg: dict, table: dict[str, str | None]) -> None:
    """Replaces each option named in ``table`` (None: drops it)."""
    for m in _added(cfg):
        options = [table.get(o, o) if o in table else o for o in m.get("options", [])]
        m["options"] = [o for o in options if o is not None]


@config("mount-flags-dropped")
def mount_flags_dropped(cfg: dict, call: Call) -> None:
    # A runtime whose table lacks the options that set a flag (and quietly skips them). Only
    # on tmpfs mounts, which hold nothing of the host ("ro" is mounts-ignore-ro's).
    names = ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "sync", "dirsync", "lazytime",
             "strictatime")  # fmt: skip
    for m in _added(cfg):
        if m.get("type") == "tmpfs":
            m["options"] = [o for o in m.get("options", []) if o not in names]


@config("mount-flags-inverted")
def mount_flags_inverted(cfg: dict, call: Call) -> None:
    # The clearing options read as the flag they clear (a table with the "clear" column lost).
    _rewrite(cfg, {"dev": "nodev", "exec": "noexec", "suid": "nosuid", "rw": "ro",
                   "atime": "noatime", "diratime": "nodiratime", "async": "sync",
                   "nolazytime": "lazytime", "nostrictatime": "strictatime",
                   "defaults": "nodev", "relatime": "noatime"})  # fmt: skip


@config("mount-options-as-data")
def mount_options_as_data(cfg: dict, call: Call) -> None:
    # Options the runtime does not know, handed on to the filesystem (tmpfs refuses them).
    _rewrite(cfg, {"silent": "bulkhead-silent", "loud": "bulkhead-loud",
                   "iversion": "bulkhead-iversion", "noiversion": "bulkhead-noiversion",
                   "norelatime": "bulkhead-norelatime"})  # fmt: skip


@config("propagation-ignored")
def propagation_ignored(cfg: dict, call: Call) -> None:
    names = ("private", "shared", "slave", "unbindable")
    _rewrite(cfg, dict.fromkeys([*names, *(f"r{n}" for n in names)]))


@config("propagation-not-recursive")
def propagation_not_recursive(cfg: dict, call: Call) -> None:
    names = ("private", "shared", "slave", "unbindable")
    _rewrite(cfg, {f"r{n}": n for n in names})


@config("recursive-options-top-only")
def recursive_options_top_only(cfg: dict, call: Call) -> None:
    # The r* options applied as their plain forms: the top mount changes, submounts do not.
    plain = ("ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "nodiratime",
             "diratime", "noatime", "atime", "relatime", "strictatime", "nostrictatime",
             "nosymfollow", "symfollow")  # fmt: skip
    _rewrite(cfg, {f"r{p}": p for p in plain})


@config("bind-as-rbind")
def bind_as_rbind(cfg: dict, call: Call) -> None:
    _rewrite(cfg, {"bind": "rbind"})


@config("rbind-as-bind")
def rbind_as_bind(cfg: dict, call: Call) -> None:
    _rewrite(cfg, {"rbind": "bind"})


@config("remount-ignored")
def remount_ignored(cfg: dict, call: Call) -> None:
    # "remount" dropped: the entry becomes a second mount on top of the first.
    _rewrite(cfg, {"remount": None})


@config("filesystem-data-dropped")
def filesystem_data_dropped(cfg: dict, call: Call) -> None:
    # Options outside the table never reach mount(2)'s data (size=, mode=, and unknown ones).
    for m in _added(cfg):
        m["options"] = [o for o in m.get("options", [])
                        if "=" not in o and not o.startswith("bulkhead-")]  # fmt: skip


@config("relative-destination-from-cwd")
def relative_destination_from_cwd(cfg: dict, call: Call) -> None:
    # A relative destination taken relative to the process's cwd instead of the root.
    cwd = str(cfg.get("process", {}).get("cwd", "/")).rstrip("/")
    for m in _added(cfg):
        if not str(m.get("destination", "/")).startswith("/"):
            m["destination"] = f"{cwd}/{m['destination']}"


@config("propagation-as-private")
def propagation_as_private(cfg: dict, call: Call) -> None:
    # Every propagation option read as private (a table whose propagation column is lost).
    names = ("shared", "slave", "unbindable")
    _rewrite(cfg, {**dict.fromkeys(names, "private"), **{f"r{n}": "rprivate" for n in names}})
