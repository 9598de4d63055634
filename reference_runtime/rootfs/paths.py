"""Container paths resolved inside the rootfs, never through it to the host (design.md §4.8).

A mount destination such as ``/srv/x`` is joined to the rootfs only after each component has
been resolved the way the kernel would resolve it with the rootfs as ``/``: a symlink is followed
relative to the rootfs (an absolute target restarts at the rootfs, ``..`` stops at it). This is
the userspace fallback for openat2(RESOLVE_IN_ROOT) (CVE-2021-30465 and kin, research/security.md).
It still races with a container process changing the tree concurrently; at create time none runs.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_SYMLINKS = 40  # the kernel's limit (path_resolution(7))


def resolve_in_root(root: str, path: str, readlink: Callable[[str], str | None]) -> str:
    """The host path for container ``path``; components that do not exist are kept as named.

    ``readlink`` returns a symlink's target, or None for anything that is not a symlink.
    """
    pending = [p for p in path.split("/") if p and p != "."]
    pending.reverse()
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root + "/" + "/".join([*done, part])
        target = readlink(candidate)
        if target is None:
            done.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise SpecError(f"{path}: too many levels of symbolic links inside the rootfs")
        if target.startswith("/"):
            done = []
        rest = [p for p in target.split("/") if p and p != "."]
        pending.extend(reversed(rest))
    return os.path.join(root, *done) if done else root
