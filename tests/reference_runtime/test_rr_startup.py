"""What the verbs load at start-up (docs/reference-runtime.md, "Start-up cost"): no ctypes on
any verb's import path (linux/ffi.py loads ``_ctypes`` on the first libc call, which only
create's children make), and ffi.py's types are the ones ctypes itself would give."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from reference_runtime.linux import ffi, libc

ROOT = Path(__file__).resolve().parents[2]
VERB_PATHS = (
    "reference_runtime.cli.create", "reference_runtime.cli.run", "reference_runtime.cli.start",
    "reference_runtime.cli.state", "reference_runtime.cli.kill", "reference_runtime.cli.delete",
    "reference_runtime.lifecycle.create", "reference_runtime.lifecycle.run",
    "reference_runtime.lifecycle.start", "reference_runtime.lifecycle.kill",
    "reference_runtime.lifecycle.delete", "reference_runtime.linux.system",
    "reference_runtime.process.init", "reference_runtime.cgroups.warmup",
)  # fmt: skip


def _loaded_after(code: str) -> list[str]:
    listing = "sorted(m for m in sys.modules if 'ctypes' in m or m == 'threading')"
    program = f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}; print({listing})"
    done = subprocess.run([sys.executable, "-IS", "-c", program], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return list(eval(done.stdout))  # a list literal of module names


def test_no_verb_imports_ctypes_or_threading() -> None:
    assert _loaded_after("import " + ", ".join(VERB_PATHS)) == []


def test_the_first_libc_call_loads_only_the_c_module() -> None:
    assert _loaded_after("from reference_runtime.linux import libc; libc.capget()") == ["_ctypes"]


@pytest.mark.parametrize(
    "name",
    ["c_byte", "c_char", "c_short", "c_int", "c_uint", "c_long", "c_ulong", "c_int32",
     "c_uint32", "c_uint64", "c_size_t"],
)  # fmt: skip
def test_the_simple_types_match_ctypes(name: str) -> None:
    ours, theirs = getattr(ffi, name), getattr(ctypes, name)
    assert ffi.sizeof(ours) == ctypes.sizeof(theirs)
    assert ours._type_ == theirs._type_


def test_aliases_are_one_type_and_other_names_come_from_ctypes() -> None:
    # as ctypes makes them on LP64 Linux; mypy knows them as distinct stub classes
    for alias, name in (("c_uint64", "c_ulong"), ("c_size_t", "c_ulong"), ("c_int32", "c_int"),
                        ("c_uint32", "c_uint")):  # fmt: skip
        assert getattr(ffi, alias) is getattr(ffi, name)
    assert ffi.POINTER is ctypes.POINTER


def test_a_library_function_sets_errno_and_returns_int() -> None:
    lib = ffi.Library("libc.so.6")
    assert lib.getpid() > 0
    assert lib.close(-1) == -1 and ffi.get_errno() == 9  # EBADF
    assert lib.getpid is lib.getpid  # made once


def test_libc_structs_are_made_once_with_the_kernels_sizes() -> None:
    sizes = {"sched_attr": 48, "open_how": 24, "mount_attr": 32, "cap_header": 8,
             "cap_data": 12, "ifreq": 40}  # fmt: skip
    for name, size in sizes.items():
        made = libc._struct(name)
        assert ffi.sizeof(made) == size, name
        assert libc._struct(name) is made
