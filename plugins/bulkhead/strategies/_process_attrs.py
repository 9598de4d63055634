"""Process attributes a runtime applies and a probe can read back exactly: capability sets that
survive execve(2), identities with a umask, environments, oom_score_adj values.

Every value drawn here is one this host can apply from the test process: capabilities the test
process itself holds, an oom_score_adj no lower than its own (lowering it needs
CAP_SYS_RESOURCE, which this host lacks: design.md §5).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.spec import DEFAULT_PATH_ENV, Capabilities, User
from bulkhead.strategies._environment import RESERVED_ENV_NAMES, env_vars

# Bit numbers from linux/capability.h (capabilities(7)); /proc/<pid>/status prints each set as
# a hex mask of these bits.
_CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAPABILITY_NUMBERS: dict[str, int] = {name: bit for bit, name in enumerate(_CAPABILITY_NAMES)}

# The names of the five sets, in the order /proc/<pid>/status prints them, with their fields.
CAPABILITY_SET_FIELDS: dict[str, str] = {
    "inheritable": "CapInh",
    "permitted": "CapPrm",
    "effective": "CapEff",
    "bounding": "CapBnd",
    "ambient": "CapAmb",
}

# Names a drawn environment never uses: the reserved ones, HOME (the suite sets it itself,
# since runc and crun add one when it is missing) and the canary that the tests put into the
# runtime's own environment to see whether it leaks into the container.
ENV_CANARY = "BULKHEAD_RUNTIME_CANARY"
_ENV_EXCLUDED = frozenset(RESERVED_ENV_NAMES | {"HOME", ENV_CANARY})

_MAX_ID = 65534  # "nobody"; larger ids buy nothing without a user namespace


def capability_mask(names: Collection[str]) -> int:
    """The /proc/<pid>/status mask of a set of capability names."""
    if unknown := sorted(set(names) - set(CAPABILITY_NUMBERS)):
        raise ValueError(f"unknown capability names: {unknown}")
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask


def capability_names(mask: int) -> list[str]:
    """The capability names of a mask, sorted; bits this table does not know are ignored."""
    return sorted(name for name, bit in CAPABILITY_NUMBERS.items() if mask >> bit & 1)


def held_capabilities(status: str | None = None) -> tuple[str, ...]:
    """Capabilities the test process (or the given /proc/<pid>/status text) holds in its
    effective, permitted and bounding sets: what a runtime started from it can grant."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    masks = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapEff", "CapPrm", "CapBnd"):
            masks[key] = int(value.strip(), 16)
    if len(masks) != 3:
        raise ValueError("no CapEff/CapPrm/CapBnd lines in the status text")
    return tuple(capability_names(masks["CapEff"] & masks["CapPrm"] & masks["CapBnd"]))


@dataclass(frozen=True)
class CapabilityCase:
    """A user and capability sets that execve(2) leaves exactly as configured (see below)."""

    uid: int
    no_new_privileges: bool
    capabilities: Capabilities


def _subset(pool: Sequence[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(pool)), unique=True).map(sorted) if pool else st.just([])


def capability_cases(candidates: Sequence[str] | None = None) -> st.SearchStrategy[CapabilityCase]:
    """Five capability sets (subsets of `candidates`, default: what this process holds) that
    the kernel keeps as they are across the runtime's final execve(2) of args[0].

    A runtime sets the sets and then execs a file without file capabilities; capabilities(7)
    then computes P' = (P & ~0) | (B if root) | I | A ... in detail:
    - root (uid 0) gets P' = E' = B | I (the file sets count as all ones), so without
      noNewPrivileges exactness needs P = E = B; with it the gain is cut back to the old P
      (P' = P & (B | I)), so P within B and E = P;
    - any other uid gets P' = E' = A, so P = E = A.
    Inheritable stays within bounding (capset(2) refuses to raise it above the bounding set
    once that is dropped) and ambient within permitted and inheritable (PR_CAP_AMBIENT_RAISE).
    """
    pool = tuple(candidates) if candidates is not None else held_capabilities()
    if unknown := sorted(set(pool) - set(CAPABILITY_NUMBERS)):
        raise InvalidArgument(f"unknown capability names: {unknown}")
    return _capability_cases(pool)


@st.composite
def _capability_cases(draw: st.DrawFn, pool: tuple[str, ...]) -> CapabilityCase:
    root = draw(st.booleans())
    uid = 0 if root else draw(st.integers(1, _MAX_ID))
    nnp = draw(st.booleans())
    bounding = draw(_subset(pool))
    inheritable = draw(_subset(bounding))
    if root and not nnp:
        permitted = list(bounding)
        ambient = draw(_subset(inheritable))
    elif root:
        permitted = draw(_subset(bounding))
        ambient = draw(_subset(sorted(set(permitted) & set(inheritable))))
    else:
        ambient = draw(_subset(inheritable))
        permitted = list(ambient)
    caps = Capabilities(
        bounding=bounding,
        effective=list(permitted),
        inheritable=inheritable,
        permitted=permitted,
        ambient=ambient,
    )
    return CapabilityCase(uid=uid, no_new_privileges=nnp, capabilities=caps)


@st.composite
def identities(draw: st.DrawFn, *, max_id: int = _MAX_ID) -> User:
    """`process.user` with uid, gid, supplementary groups and always a umask."""
    ids = st.integers(0, max_id)
    return User(
        uid=draw(ids),
        gid=draw(ids),
        additional_gids=draw(st.lists(ids, unique=True, max_size=4)) or None,
        umask=draw(st.integers(0, 0o777)),
    )


def environments(*, max_size: int = 5) -> st.SearchStrategy[list[str]]:
    """Whole `process.env` lists: the default PATH (args[0] is found through it), HOME (so no
    runtime has a reason to add one) and drawn `NAME=value` entries with distinct names."""
    home = st.sampled_from(["/", "/root", "/tmp"]).map(lambda path: f"HOME={path}")
    return st.tuples(home, env_vars(max_size=max_size, exclude=_ENV_EXCLUDED)).map(
        lambda parts: [DEFAULT_PATH_ENV, parts[0], *parts[1]]
    )


def current_oom_score_adj() -> int:
    return int(Path("/proc/self/oom_score_adj").read_text())


def oom_score_adjs(floor: int | None = None) -> st.SearchStrategy[int]:
    """Values in [floor, 1000]: raising oom_score_adj needs no privilege, lowering it below the
    caller's own needs CAP_SYS_RESOURCE (proc(5)); `floor` defaults to this process's value."""
    low = current_oom_score_adj() if floor is None else floor
    if not -1000 <= low <= 1000:
        raise InvalidArgument(f"floor={low} must be in [-1000, 1000]")
    return st.integers(low, 1000)
