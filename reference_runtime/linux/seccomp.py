"""linux.seccomp through libseccomp (Debian's libseccomp2), driven with ctypes.

The filter is compiled in the runtime before the first fork, so an unknown syscall or
architecture is refused before anything is made; the children inherit the compiled context
and load it (seccomp_load) as the last step before execve. Constants are those of seccomp.h
(libseccomp 2.5); the library is loaded only for configs that ask for seccomp.
"""

from __future__ import annotations

import ctypes
import os

from reference_runtime.errors import SpecError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# seccomp.h: SCMP_ACT_*; ERRNO and TRACE carry a 16-bit value in their low bits.
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
EPERM = 1  # config-linux.md: errnoRet defaults to EPERM
# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}  # fmt: skip
# enum scmp_filter_attr
_ATTR_CTL_NNP = 3  # libseccomp sets no_new_privs on load unless told not to; the config decides
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_TSYNC": -1,  # the init is single-threaded: nothing to synchronise
}
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
)  # fmt: skip


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: Any = None


def _library() -> Any:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            raise SpecError("linux.seccomp needs libseccomp (Debian: libseccomp2)") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]  # fmt: skip
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def _action(name: str, errno_ret: int | None, what: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise SpecError(f"{what}: SCMP_ACT_NOTIFY (a seccomp listener) is not supported yet")
    if name not in ACTIONS:
        raise SpecError(f"{what}: unknown seccomp action {name!r}")
    value = ACTIONS[name]
    if name == "SCMP_ACT_ERRNO" or name == "SCMP_ACT_TRACE":
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


class Filter:
    """A compiled filter; ``load()`` installs it on the calling thread."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: int) -> None:
        self.ctx = ctx

    def load(self) -> None:
        rc = _library().seccomp_load(ctypes.c_void_p(self.ctx))
        if rc < 0:
            raise SyscallError(-rc, "seccomp_load")


def compile_filter(cfg: dict[str, Any], no_new_privileges: bool) -> Filter:
    """Builds the filter of a (structurally validated) linux.seccomp object."""
    lib = _library()
    if cfg.get("listenerPath"):
        raise SpecError("linux.seccomp.listenerPath: seccomp listeners are not supported yet")
    default = _action(cfg.get("defaultAction", ""), cfg.get("defaultErrnoRet"),
                      "linux.seccomp.defaultAction")  # fmt: skip
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SpecError("linux.seccomp: libseccomp refused the default action")
    lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 1 if no_new_privileges else 0)
    for arch in cfg.get("architectures") or []:
        if arch not in ARCHITECTURES:
            raise SpecError(f"linux.seccomp: unknown architecture {arch!r}")
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        rc = lib.seccomp_arch_add(ctx, token) if token else -22
        if rc < 0 and rc != -17:  # EEXIST: the native architecture is there already
            raise SpecError(f"linux.seccomp: architecture {arch} is not supported here")
    for flag in cfg.get("flags") or []:
        if flag not in FLAGS:
            raise SpecError(f"linux.seccomp: unsupported flag {flag!r}")
        if FLAGS[flag] >= 0 and lib.seccomp_attr_set(ctx, FLAGS[flag], 1) < 0:
            raise SpecError(f"linux.seccomp: flag {flag} is not supported by this kernel")
    for i, rule in enumerate(cfg.get("syscalls") or []):
        what = f"linux.seccomp.syscalls[{i}]"
        action = _action(rule.get("action", ""), rule.get("errnoRet"), what)
        args = rule.get("args") or []
        cmps = (_ArgCmp * max(len(args), 1))()
        for j, arg in enumerate(args):
            op = arg.get("op")
            if op not in OPERATORS:
                raise SpecError(f"{what}.args[{j}]: unknown operator {op!r}")
            cmps[j] = _ArgCmp(arg["index"], OPERATORS[op], arg["value"], arg.get("valueTwo", 0))
        for name in rule.get("names") or []:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0 and number != -1:
                continue  # a pseudo-syscall number for this arch: libseccomp maps it itself
            if number == -1:
                raise SpecError(f"{what}: unknown syscall {name!r}")
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default (EACCES)
            rc = lib.seccomp_rule_add_array(ctx, action, number, len(args), cmps)
            if rc < 0:
                raise SpecError(f"{what}: libseccomp refused the rule for {name}: "
                                f"{os.strerror(-rc)}")  # fmt: skip
    return Filter(ctx)
