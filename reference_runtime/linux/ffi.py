"""The few ctypes pieces the syscall wrappers (linux/libc.py) use, defined on ``_ctypes``, and
only when first used.

``import ctypes`` costs ~4 ms of CPU here (measured 2026-12-01, 30 runs each: 6.4 ms for
``import ctypes`` and a CDLL, 2.6 ms for these definitions and a dlopen), and every ``create``
and ``run`` would pay it: the package builds some thirty types and helpers, and imports
``struct``, ``types`` and ``ctypes._endian``, of which libc.py needs none. ``_ctypes`` is the C
module the package is built on; the definitions below are the ones ctypes/__init__.py makes for
the same names: a simple type is a ``_SimpleCData`` subclass named by its struct-module type
code (on x86_64 and arm64 Linux, LP64: long is 64 bits, so c_uint64 and c_size_t are c_ulong,
as ctypes chooses them), and a library's functions are ``CFuncPtr`` subclasses with ctypes'
defaults for ``CDLL(name, use_errno=True)``: cdecl, errno saved for ``get_errno``, an int
result, arguments passed as they come.

Nothing is loaded at import: the first attribute asked for loads ``_ctypes`` (~200 KB of
resident memory and ~1 ms) and makes the types. The runtime's own process calls no libc
function during ``create`` (its children do), so its peak memory, which the benchmark compares
with runc's, never holds them. A name not defined here is taken from ctypes itself, so nothing
is missing, only slower; mypy checks callers against ctypes' own types.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ctypes import (
        Structure,
        byref,
        c_byte,
        c_char,
        c_int,
        c_int32,
        c_long,
        c_short,
        c_size_t,
        c_uint,
        c_uint32,
        c_uint64,
        c_ulong,
        get_errno,
        sizeof,
    )
    from typing import Any

__all__ = [
    "Library", "Structure", "byref", "c_byte", "c_char", "c_int", "c_int32", "c_long",
    "c_short", "c_size_t", "c_uint", "c_uint32", "c_uint64", "c_ulong", "get_errno", "sizeof",
]  # fmt: skip

RTLD_LOCAL = 0  # ctypes' DEFAULT_MODE on Linux; _ctypes.dlopen adds RTLD_NOW itself
# type code of each simple type (the struct module's), and the LP64 aliases ctypes makes
_CODES = {"c_byte": "b", "c_char": "c", "c_short": "h", "c_int": "i", "c_uint": "I",
          "c_long": "l", "c_ulong": "L"}  # fmt: skip
_ALIASES = {"c_int32": "c_int", "c_uint32": "c_uint", "c_uint64": "c_ulong", "c_size_t": "c_ulong"}
_loaded: dict[str, Any] = {}


def _load() -> dict[str, Any]:
    """Loads _ctypes and makes the names above (once)."""
    if not _loaded:
        import _ctypes

        names: dict[str, Any] = {
            name: getattr(_ctypes, name)
            for name in ("Structure", "byref", "dlopen", "get_errno", "sizeof")
        }
        for name, code in _CODES.items():
            names[name] = type(name, (_ctypes._SimpleCData,), {"_type_": code})
        for alias, name in _ALIASES.items():
            names[alias] = names[name]
        names["_Function"] = type("_Function", (_ctypes.CFuncPtr,), {
            "_flags_": _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO,
            "_restype_": names["c_int"],
        })  # fmt: skip
        _loaded.update(names)
    return _loaded


class Library:
    """A shared library (dlopen(3), on first use); its functions are attributes, made once."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._handle_: int | None = None

    @property
    def _handle(self) -> int:  # what CFuncPtr reads, as from ctypes' CDLL
        if self._handle_ is None:
            self._handle_ = _load()["dlopen"](self._name, RTLD_LOCAL)
        return self._handle_

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        function = _load()["_Function"]((name, self))
        setattr(self, name, function)
        return function


def __getattr__(name: str) -> Any:
    names = _load()
    if name in names and not name.startswith("_") and name != "dlopen":
        value = names[name]
    else:
        import ctypes

        value = getattr(ctypes, name)
    globals()[name] = value  # found directly from now on
    return value
