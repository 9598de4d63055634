"""linux.seccomp through libseccomp (Debian's libseccomp2), driven with ctypes.

The filter is compiled in the runtime before the first fork, so an unknown syscall or
architecture is refused before anything is made; the children inherit the compiled context
and load it (seccomp_load) as the last step before execve. Constants are those of seccomp.h
(libseccomp 2.5); the library is loaded only for configs that ask for seccomp.

With an SCMP_ACT_NOTIFY rule the init loads the filter during create instead, takes the
listener fd (seccomp_notify_fd(3)) and passes it to the runtime over a socket pair
(``send_notify_fd``/``receive_notify_fd``); the runtime sends it on to the agent at
``listenerPath`` with the container process state (``send_to_listener``, config-linux.md
"The Container Process State").
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
    "SCMP_ACT_NOTIFY": 0x7FC00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
EPERM = 1  # config-linux.md: errnoRet defaults to EPERM
# The actions that carry a value; config-linux.md: errnoRet on any other "MUST print an error
# and fail".
_TAKE_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
# The fd's name in the container process state's "fds" (config-linux.md "Seccomp").
SECCOMP_FD_NAME = "seccompFd"
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
        lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def _action(name: str, errno_ret: int | None, what: str, errno_field: str) -> int:
    if name not in ACTIONS:
        raise SpecError(f"{what}: unknown seccomp action {name!r}")
    value = ACTIONS[name]
    if name in _TAKE_ERRNO:
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    elif errno_ret is not None:
        raise SpecError(f"{what}: {errno_field} is set, but {name} takes no errno (only "
                        "SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")  # fmt: skip
    return value


class Filter:
    """A compiled filter; ``load()`` installs it on the calling thread.

    ``listener`` is the listenerPath when a rule notifies (None otherwise: config-linux.md
    says the path is ignored without SCMP_ACT_NOTIFY), ``metadata`` its listenerMetadata.
    """

    __slots__ = ("ctx", "listener", "metadata")

    def __init__(self, ctx: int, listener: str | None = None, metadata: str | None = None) -> None:
        self.ctx = ctx
        self.listener = listener
        self.metadata = metadata

    def load(self) -> int:
        """Loads the filter; returns the notify fd (O_CLOEXEC) if it has a listener, else -1."""
        lib = _library()
        rc = lib.seccomp_load(ctypes.c_void_p(self.ctx))
        if rc < 0:
            raise SyscallError(-rc, "seccomp_load")
        if self.listener is None:
            return -1
        fd = lib.seccomp_notify_fd(ctypes.c_void_p(self.ctx))
        if fd < 0:
            raise SyscallError(-fd, "seccomp_notify_fd")
        return int(fd)


def compile_filter(cfg: dict[str, Any], no_new_privileges: bool) -> Filter:
    """Builds the filter of a (structurally validated) linux.seccomp object."""
    lib = _library()
    default_name = cfg.get("defaultAction", "")
    if default_name == "SCMP_ACT_NOTIFY":
        # Every call the runtime's init makes after the load would wait for the agent.
        raise SpecError("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is supported on rules only")
    default = _action(default_name, cfg.get("defaultErrnoRet"), "linux.seccomp.defaultAction",
                      "defaultErrnoRet")  # fmt: skip
    notify = any(r.get("action") == "SCMP_ACT_NOTIFY" for r in cfg.get("syscalls") or [])
    listener = cfg.get("listenerPath") or None
    if notify and listener is None:
        raise SpecError("linux.seccomp: an SCMP_ACT_NOTIFY rule needs a listenerPath to send "
                        "the notify fd to")  # fmt: skip
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
    added: set[tuple[int, int]] = set()  # (action, syscall) pairs given to libseccomp
    for i, rule in enumerate(cfg.get("syscalls") or []):
        what = f"linux.seccomp.syscalls[{i}]"
        action = _action(rule.get("action", ""), rule.get("errnoRet"), what, "errnoRet")
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
            # libseccomp answers EEXIST when it holds an equal rule already: a repeated rule, or
            # one that only differs in arguments it cannot check on one of the filter's
            # architectures (on x86, socket() goes through socketcall(2), so podman's default
            # profile's two "allow socket unless ..." rules become one there). With the same
            # action that is the same filter; a different action for the same syscall and
            # arguments is a conflict, and stays an error.
            if rc == -17 and (action, number) in added:
                continue
            added.add((action, number))
            if rc < 0:
                raise SpecError(f"{what}: libseccomp refused the rule for {name}: "
                                f"{os.strerror(-rc)}")  # fmt: skip
    if not notify:
        return Filter(ctx)
    return Filter(ctx, listener, cfg.get("listenerMetadata"))


# --- the listener -------------------------------------------------------------------------------


def notify_fd_channel() -> tuple[int, int]:
    """The socket pair the notify fd crosses: (the runtime's end, the init's end)."""
    import socket

    try:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "socketpair", "for the seccomp notify fd") from None
    return a.detach(), b.detach()  # both O_CLOEXEC (PEP 446)


def send_notify_fd(sock_fd: int, fd: int) -> None:
    """From the init: ``fd`` to the runtime over its end of the socket pair (SCM_RIGHTS)."""
    import socket

    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [SECCOMP_FD_NAME.encode()], [fd])
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "sendmsg", "the seccomp notify fd") from None
    finally:
        sock.detach()  # the fd stays the caller's to close


def receive_notify_fd(sock_fd: int) -> int:
    """In the runtime: the notify fd the init sent over the socket pair."""
    import socket

    sock = socket.socket(fileno=sock_fd)
    try:
        _, fds, _, _ = socket.recv_fds(sock, 64, 1)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "recvmsg", "the seccomp notify fd") from None
    finally:
        sock.detach()
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise SyscallError(71, "recvmsg", "the seccomp notify fd")  # EPROTO: none came
    return fds[0]


def send_to_listener(path: str, payload: bytes, fd: int) -> None:
    """Sends the container process state and ``fd`` to the agent at ``path``, on a connection
    of its own that is closed afterwards (config-linux.md: AF_UNIX, SOCK_STREAM, exactly one
    state per connection, never reused). The fd goes with the first sendmsg; should the kernel
    take only part of the payload, the rest follows without it."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        sent = socket.send_fds(sock, [payload], [fd])
        if sent < len(payload):
            sock.sendall(payload[sent:])
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "send the container process state to",
                           f"listenerPath {path}") from None  # fmt: skip
    finally:
        sock.close()
