"""POSIX resource limits (getrlimit(2)): the spec's names → RLIMIT_* numbers."""

from __future__ import annotations

import resource

from reference_runtime.errors import SyscallError

RLIMITS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        (
            "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
            "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
            "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
            "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
        )
    )
}  # fmt: skip

# The spec's values are uint64; RLIM_INFINITY is all ones.
RLIM_INFINITY = 2**64 - 1


def setrlimit(name: str, soft: int, hard: int) -> None:
    def conv(v: int) -> int:
        return resource.RLIM_INFINITY if v >= RLIM_INFINITY else v

    try:
        resource.setrlimit(RLIMITS[name], (conv(soft), conv(hard)))
    except (OSError, ValueError) as exc:
        errno = getattr(exc, "errno", None) or 1  # EPERM: raising a hard limit needs privilege
        raise SyscallError(errno, "setrlimit", f"{name} {soft}:{hard}") from None
