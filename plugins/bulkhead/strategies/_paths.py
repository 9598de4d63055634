"""Container paths: clean absolute paths and subsets of known path lists."""

from __future__ import annotations

import posixpath
import string
from collections.abc import Iterable

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

# POSIX.1-2017 §3.282 "Portable Filename Character Set": safe in every mount option string
# and shell command a test might build (no space, comma, colon or quote).
PORTABLE_FILENAME_CHARACTERS = string.ascii_letters + string.digits + "._-"


def _is_clean_absolute(path: str) -> bool:
    return (
        path.startswith("/")
        and "//" not in path
        and "\x00" not in path
        and posixpath.normpath(path) == path
    )


def absolute_paths(
    *,
    parent: str = "/",
    min_depth: int = 1,
    max_depth: int = 4,
    max_component_length: int = 16,
) -> st.SearchStrategy[str]:
    """Absolute paths under `parent` with no `.`/`..` components, no NUL and no `//`.

    config-linux.md requires absolute container paths for maskedPaths, readonlyPaths and (as
    of v1.1) mount destinations; keeping them clean means a test compares like with like.
    """
    if not _is_clean_absolute(parent):
        raise InvalidArgument(f"parent={parent!r} is not a clean absolute path")
    if not 0 <= min_depth <= max_depth:
        raise InvalidArgument(f"need 0 <= min_depth <= max_depth, got {min_depth}, {max_depth}")
    components = st.text(
        PORTABLE_FILENAME_CHARACTERS, min_size=1, max_size=max_component_length
    ).filter(lambda c: c not in (".", ".."))
    return st.lists(components, min_size=min_depth, max_size=max_depth).map(
        lambda parts: posixpath.join(parent, *parts)
    )


def path_subsets(
    candidates: Iterable[str], min_size: int = 1, max_size: int | None = None
) -> st.SearchStrategy[list[str]]:
    """Sorted lists of distinct paths drawn from `candidates` (e.g. DOCKER_MASKED_PATHS)."""
    pool = sorted(set(candidates))
    if not pool:
        raise InvalidArgument("path_subsets() needs at least one candidate path")
    if bad := [p for p in pool if not p.startswith("/")]:
        raise InvalidArgument(f"candidates must be absolute container paths, got {bad}")
    if not 0 <= min_size <= len(pool):
        raise InvalidArgument(f"min_size={min_size} must be in [0, {len(pool)}]")
    return st.lists(st.sampled_from(pool), min_size=min_size, max_size=max_size, unique=True).map(
        sorted
    )
