"""``requires(...)``: what a test needs from the host, decided by probing it.

A requirement that is not met turns into a skip whose reason says what was found. A name that is
not defined here is an error, never a skip: a typo must not silently switch a test off.

Names: ``root``, ``overlay``, ``userns``, ``cgroup_v1``, ``cgroup_v2``, ``cgroupns``, ``timens``,
``controller:<name>`` (a cgroup controller available in v1 or v2), ``cap:<number>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bulkhead.errors import UnknownRequirement
from bulkhead.host import HostFacts

Check = Callable[[HostFacts], str | None]


def _root(h: HostFacts) -> str | None:
    return None if h.is_root else "needs root (effective uid 0)"


def _overlay(h: HostFacts) -> str | None:
    return None if h.overlay else "overlayfs is not in /proc/filesystems"


def _userns(h: HostFacts) -> str | None:
    return None if h.userns else "user namespaces are unavailable (max_user_namespaces is 0?)"


def _cgroup_v1(h: HostFacts) -> str | None:
    if h.cgroups.v1_controllers:
        return None
    return f"needs cgroup v1 controllers; host cgroups are {h.cgroups.describe()}"


def _cgroup_v2(h: HostFacts) -> str | None:
    if h.cgroups.v2_mount is not None:
        return None
    return f"needs a cgroup2 mount; host cgroups are {h.cgroups.describe()}"


def _ns(kind: str) -> Check:
    def check(h: HostFacts) -> str | None:
        return None if kind in h.namespaces else f"the kernel has no {kind} namespace"

    return check


CHECKS: dict[str, Check] = {
    "root": _root,
    "overlay": _overlay,
    "userns": _userns,
    "cgroup_v1": _cgroup_v1,
    "cgroup_v2": _cgroup_v2,
    "cgroupns": _ns("cgroup"),
    "timens": _ns("time"),
}


def _parametrised(name: str, host: HostFacts) -> str | None:
    kind, _, arg = name.partition(":")
    if kind == "controller" and arg:
        available = host.cgroups.v1_controllers | host.cgroups.v2_controllers
        if arg in available:
            return None
        return f"cgroup controller {arg!r} is not available ({host.cgroups.describe()})"
    if kind == "cap" and arg.isdigit():
        if host.has_cap(int(arg)):
            return None
        return f"capability {arg} is not in the effective set"
    raise UnknownRequirement(
        f"unknown requirement {name!r}; known: {', '.join(sorted(CHECKS))}, "
        "controller:<name>, cap:<number>"
    )


def unmet(names: Iterable[str], host: HostFacts) -> list[str]:
    """The reasons the host does not meet ``names``; empty when all are met."""
    reasons = []
    for name in names:
        check = CHECKS.get(name)
        reason = check(host) if check is not None else _parametrised(name, host)
        if reason is not None:
            reasons.append(f"{name}: {reason}")
    return reasons
