"""Process environments: `NAME=value` lists (config.md "POSIX process", `env`)."""

from __future__ import annotations

import string
from collections.abc import Collection

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.strategies._text import c_strings

# Names a generated environment never sets, because they change what runs rather than what
# the process sees: PATH is how args[0] is found (callers add the default one), IFS and ENV
# change how sh parses and starts, LD_* change which code the dynamic loader maps.
RESERVED_ENV_NAMES: frozenset[str] = frozenset(
    {"PATH", "IFS", "ENV", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"}
)

# POSIX.1-2017 §8.1: portable names are letters, digits and underscore, not starting with a digit.
_NAME_START = string.ascii_letters + "_"
_NAME_REST = _NAME_START + string.digits


def env_names(*, exclude: Collection[str] = RESERVED_ENV_NAMES) -> st.SearchStrategy[str]:
    """Portable environment variable names, 1 to 16 characters."""
    names = st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(_NAME_START),
        st.text(_NAME_REST, max_size=15),
    )
    return names.filter(lambda name: name not in exclude)


def env_vars(
    *, max_size: int = 5, exclude: Collection[str] = RESERVED_ENV_NAMES
) -> st.SearchStrategy[list[str]]:
    """`NAME=value` lists with distinct names; values may hold `=` and any non-NUL text."""
    if max_size < 0:
        raise InvalidArgument(f"max_size={max_size} must not be negative")
    pairs = st.lists(
        st.tuples(env_names(exclude=exclude), c_strings(max_size=32)),
        max_size=max_size,
        unique_by=lambda pair: pair[0],
    )
    return pairs.map(lambda items: [f"{name}={value}" for name, value in items])
