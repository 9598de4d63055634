"""The container process: argv, user, capabilities and the whole `process` object."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.spec import (
    DEFAULT_PATH_ENV,
    DOCKER_DEFAULT_CAPABILITIES,
    Capabilities,
    Process,
    User,
)
from bulkhead.strategies._environment import env_vars
from bulkhead.strategies._rlimits import rlimits
from bulkhead.strategies._text import c_strings

# Runs with nothing but a POSIX sh in the rootfs and ignores whatever arguments follow: with
# `sh -c CMD NAME ARG...`, NAME becomes $0 and the drawn arguments $1... (POSIX sh, `-c`).
DEFAULT_PROGRAM: tuple[str, ...] = ("sh", "-c", "exit 0", "sh")

# Highest id drawn: 65534 is the conventional "nobody"; larger ids buy nothing without a userns.
_MAX_ID = 65534
_CAPABILITY_NAME = re.compile(r"^CAP_[A-Z_]+$")


def process_args(
    program: Sequence[str] = DEFAULT_PROGRAM, *, max_extra: int = 4
) -> st.SearchStrategy[list[str]]:
    """argv lists: `program` followed by up to `max_extra` arbitrary (non-NUL) arguments.

    `program` must be runnable in the rootfs and tolerate the extra arguments; config.md
    requires at least one entry in `args` on POSIX platforms.
    """
    if not program:
        raise InvalidArgument("program must have at least one entry (config.md, `args`)")
    prefix = list(program)
    return st.lists(c_strings(max_size=16), max_size=max_extra).map(lambda extra: prefix + extra)


@st.composite
def users(draw: st.DrawFn, *, max_id: int = _MAX_ID) -> User:
    """`process.user`: uid, gid, optional supplementary groups and umask."""
    ids = st.integers(0, max_id)
    additional = draw(st.lists(ids, unique=True, max_size=3))
    return User(
        uid=draw(ids),
        gid=draw(ids),
        additional_gids=additional or None,
        umask=draw(st.none() | st.integers(0, 0o777)),
    )


def capability_sets(
    candidates: Sequence[str] = DOCKER_DEFAULT_CAPABILITIES,
    *,
    min_size: int = 0,
    max_size: int | None = None,
) -> st.SearchStrategy[list[str]]:
    """Sorted subsets of `candidates` (Docker's 14 defaults, which include runc's 3).

    Never every capability: without CAP_SYS_RESOURCE on this host a config granting all of
    them fails at capset(2) (design.md §5). An empty set is a valid, fully unprivileged one.
    """
    pool = sorted(set(candidates))
    if bad := [name for name in pool if not _CAPABILITY_NAME.match(name)]:
        raise InvalidArgument(f"not capability names: {bad}")
    if not 0 <= min_size <= len(pool):
        raise InvalidArgument(f"min_size={min_size} must be in [0, {len(pool)}]")
    return st.lists(st.sampled_from(pool), min_size=min_size, max_size=max_size, unique=True).map(
        sorted
    )


def capabilities(
    candidates: Sequence[str] = DOCKER_DEFAULT_CAPABILITIES,
) -> st.SearchStrategy[Capabilities]:
    """One drawn set used as bounding, effective and permitted, as `runc spec` and Docker do.

    Inheritable and ambient stay unset (CVE-2022-29162: they must be empty unless asked for).
    """
    return capability_sets(candidates).map(
        lambda names: Capabilities(
            bounding=list(names), effective=list(names), permitted=list(names)
        )
    )


@st.composite
def processes(draw: st.DrawFn, *, args: st.SearchStrategy[list[str]] | None = None) -> Process:
    """Whole `process` objects: drawn argv, user, env (after the default PATH), capabilities,
    rlimits and noNewPrivileges; no terminal, cwd "/" (which every rootfs has)."""
    return Process(
        terminal=False,
        user=draw(users()),
        args=draw(args if args is not None else process_args()),
        env=[DEFAULT_PATH_ENV, *draw(env_vars())],
        cwd="/",
        capabilities=draw(capabilities()),
        rlimits=draw(rlimits()) or None,
        no_new_privileges=draw(st.booleans()),
    )
