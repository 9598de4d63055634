"""Linux-specific parts of a config (config-linux.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.spec import NamespaceType

# Namespaces a container may create without further config. "user" needs uid/gid mappings and
# "time" a recent kernel and runtime (timens is Linux 5.6), so both are opt-in.
_PLAIN_NAMESPACES: tuple[NamespaceType, ...] = ("pid", "network", "ipc", "uts", "cgroup")


def namespace_sets(
    *,
    required: Sequence[NamespaceType] = (),
    user: bool = False,
    time: bool = False,
) -> st.SearchStrategy[list[NamespaceType]]:
    """Lists of distinct namespace types to create: "mount" first, then `required`, then any
    of pid, network, ipc, uts, cgroup (plus user/time when asked) in drawn order.

    A private mount namespace is always there: without it the runtime's mounts would land in
    the host's namespace, and runc refuses masked or read-only paths ("unable to restrict sys
    entries without a private MNT namespace"). Pass required=("uts",) when the spec sets
    hostname or domainname: runc refuses those without a private UTS namespace too.
    """
    if bad := [t for t in required if t not in get_args(NamespaceType)]:
        raise InvalidArgument(f"unknown namespace types: {bad}")
    fixed: list[NamespaceType] = ["mount"]
    fixed += [t for t in dict.fromkeys(required) if t != "mount"]
    optional: list[NamespaceType] = [*_PLAIN_NAMESPACES]
    optional += ["user"] if user else []
    optional += ["time"] if time else []
    choices = [t for t in optional if t not in fixed]
    return st.lists(st.sampled_from(choices), unique=True, max_size=len(choices)).map(
        lambda drawn: fixed + drawn
    )
