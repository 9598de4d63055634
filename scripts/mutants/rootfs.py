"""Mutants that get the root filesystem and the mounts wrong."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mutants import Call, config, verb

# `runc spec` has 7 mounts; the suite's tests add theirs after them.
DEFAULT_MOUNTS = 7


@config("writable-root")
def writable_root(cfg: dict, call: Call) -> None:
    cfg["root"]["readonly"] = False


@config("reversed-mounts")
def reversed_mounts(cfg: dict, call: Call) -> None:
    mounts = cfg.get("mounts", [])
    cfg["mounts"] = mounts[:DEFAULT_MOUNTS] + list(reversed(mounts[DEFAULT_MOUNTS:]))


@config("mounts-ignore-ro")
def mounts_ignore_ro(cfg: dict, call: Call) -> None:
    for m in cfg.get("mounts", [])[DEFAULT_MOUNTS:]:
        m["options"] = [o for o in m.get("options", []) if o != "ro"]


@config("shared-root")
def shared_root(cfg: dict, call: Call) -> None:
    # Run on the shared image itself instead of the bundle's overlay (a runtime ignoring root).
    cfg["root"]["path"] = os.environ["BULKHEAD_MUTANT_IMAGE"]
    cfg["root"]["readonly"] = True  # never let a container write into the shared image


def _copy_of(container_id: str) -> Path:
    return Path("/dev/shm") / f"bulkhead-mutant-{container_id}"


@config("copied-root")
def copied_root(cfg: dict, call: Call) -> None:
    # The rootfs copied onto tmpfs: same files, but not the overlay the bundle provides.
    copy = _copy_of(call.container_id)
    subprocess.run(["cp", "-a", os.environ["BULKHEAD_MUTANT_IMAGE"], str(copy)], check=True)
    cfg["root"]["path"] = str(copy)


@verb("copied-root")
def copied_root_delete(call: Call) -> int | None:
    if call.verb != "delete":
        return None
    code = call.real()
    subprocess.run(["rm", "-rf", str(_copy_of(call.container_id))], check=False)
    return code


@config("no-rootfs-propagation")
def no_rootfs_propagation(cfg: dict, call: Call) -> None:
    # A runtime that ignores linux.rootfsPropagation and keeps its own default for the root.
    cfg.get("linux", {}).pop("rootfsPropagation", None)
