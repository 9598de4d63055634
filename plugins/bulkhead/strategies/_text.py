"""Strings that survive the trip through config.json into execve(2) and C runtimes."""

from __future__ import annotations

from hypothesis import strategies as st


def c_strings(*, max_size: int = 16) -> st.SearchStrategy[str]:
    """Text without NUL, encodable as UTF-8 (so no lone surrogates).

    argv, envp and C runtimes end a string at the first NUL, and JSON written as UTF-8 cannot
    carry surrogates: anything else, control characters included, is fair game.
    """
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=max_size)
