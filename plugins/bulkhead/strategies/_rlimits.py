"""POSIX rlimits that this host can actually apply (config.md "POSIX process", `rlimits`)."""

from __future__ import annotations

import functools
import resource
from collections.abc import Mapping

from hypothesis import strategies as st

from bulkhead.spec import DEFAULT_NOFILE_LIMIT, Rlimit

# (least soft value, greatest hard value) per type. The floors keep the container's process and
# the runtime's init working (a few fds, a usable stack, time to run); the ceilings stay
# within what an unprivileged host allows, because without CAP_SYS_RESOURCE a hard limit can
# only be lowered (setrlimit(2), design.md §5). RLIMIT_AS/DATA/RSS are left out: too low and
# the runtime's own init fails before the container starts, which tests nothing useful.
_BOUNDS: dict[str, tuple[int, int]] = {
    "RLIMIT_CORE": (0, 1 << 30),
    "RLIMIT_CPU": (60, 3600),  # seconds; SIGXCPU at the soft limit
    "RLIMIT_FSIZE": (1 << 20, 1 << 30),  # bytes; SIGXFSZ at the soft limit
    "RLIMIT_MEMLOCK": (0, 8 << 20),  # 8 MiB, the kernel default since 5.16
    "RLIMIT_MSGQUEUE": (0, 819200),  # bytes; 819200 is the kernel default
    "RLIMIT_NICE": (0, 40),  # 20 - nice; 40 allows nice -20
    "RLIMIT_NOFILE": (64, DEFAULT_NOFILE_LIMIT),
    "RLIMIT_NPROC": (512, 4096),  # per real uid, host-wide; root is exempt (fork.c)
    "RLIMIT_RTPRIO": (0, 99),
    "RLIMIT_SIGPENDING": (16, 1024),
    "RLIMIT_STACK": (2 << 20, 64 << 20),
}


@functools.cache
def rlimit_bounds() -> Mapping[str, tuple[int, int]]:
    """`_BOUNDS`, with each ceiling lowered to this process's hard limit (which a runtime
    started from here inherits). Types this host cannot satisfy are dropped."""
    bounds: dict[str, tuple[int, int]] = {}
    for name, (least, greatest) in _BOUNDS.items():
        _, hard = resource.getrlimit(getattr(resource, name))
        if hard != resource.RLIM_INFINITY:
            greatest = min(greatest, hard)
        if least <= greatest:
            bounds[name] = (least, greatest)
    return bounds


@st.composite
def rlimits(draw: st.DrawFn, *, max_size: int = 3) -> list[Rlimit]:
    """Rlimits of distinct types with least <= soft <= hard <= ceiling for this host."""
    bounds = rlimit_bounds()
    types = draw(st.lists(st.sampled_from(sorted(bounds)), unique=True, max_size=max_size))
    limits = []
    for name in types:
        least, greatest = bounds[name]
        hard = draw(st.integers(least, greatest))
        soft = draw(st.integers(least, hard))
        limits.append(Rlimit(type=name, soft=soft, hard=hard))
    return limits
