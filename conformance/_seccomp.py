"""Helpers of the seccomp tests (config-linux.md "Seccomp", "The Container Process State").

- What the program sees: ``bulkhead-probe syscall NAME[:ARG0]...`` makes each call itself and
  prints ``NAME=ok:RET``, the errno's name, or ``trapped``; ``calls_script`` wraps it in sh so
  that a death by a signal shows as the shell's ``status=128+N``.
- Which syscalls to filter: the probe's calls only read about the calling process (or set its
  umask, alarm, persona), and neither busybox sh nor a runtime makes them once the filter is
  loaded (the runtime's last steps are the fifo, signals and execve), so a rule on them cannot
  break start-up. ``native_syscall_names`` asks the host's libseccomp for every name of this
  architecture, to build an allow-list for a non-ALLOW ``defaultAction``.
- The seccomp agent: ``Agent`` listens on an AF_UNIX SOCK_STREAM socket and records, per
  connection, every ``recvmsg`` (bytes and SCM_RIGHTS fds) up to end of file;
  ``receive_notification``/``answer`` drive SECCOMP_IOCTL_NOTIF_RECV/SEND on the received fd
  (seccomp_unotify(2)).
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkhead.containers import Result
from bulkhead.runtime import RuntimeCallError, RuntimeClient
from bulkhead.spec import Rlimit, Seccomp, Spec

PROBE = "bulkhead-probe"
# Calls a rule may target safely (see the module docstring); their default arguments are
# harmless (getpgid(0), umask(022), personality(0xffffffff) only queries, ...).
POOL = (
    "getpgid",
    "getsid",
    "umask",
    "getpriority",
    "sched_getscheduler",
    "sched_get_priority_max",
    "times",
    "getcpu",
    "alarm",
)
# The shell reports a child killed by signal N as status 128 + N.
SIGSYS_STATUS = 128 + 31


def probe_args(*calls: str) -> tuple[str, ...]:
    """Container args making ``calls`` from the probe itself (pid 1 of the container)."""
    return (f"/bin/{PROBE}", "syscall", *calls)


def calls_script(*calls: str) -> str:
    """A shell script making ``calls`` in the probe, then printing the probe's exit status on
    a line of its own (a killed probe leaves its line unfinished)."""
    return f"{PROBE} syscall {' '.join(calls)}; s=$?; echo; echo status=$s"


@dataclass(frozen=True)
class Seen:
    """What the probe reported: call -> outcome (``ok:RET``, ``EPERM``, ``trapped``, or ``""``
    for a call that never returned), and the shell's ``status`` line if there was one."""

    outcomes: dict[str, str]
    status: int | None
    raw: str

    @classmethod
    def parse(cls, result: Result) -> Seen:
        outcomes: dict[str, str] = {}
        status = None
        for line in result.stdout.splitlines():
            if line.startswith("status="):
                status = int(line.removeprefix("status="))
                continue
            for part in line.split():
                key, sep, value = part.partition("=")
                if sep:
                    outcomes[key] = value
        return cls(
            outcomes,
            status,
            f"exit {result.exit_code}, stdout {result.stdout!r}, stderr {result.stderr.strip()!r}",
        )

    def errno_of(self, call: str) -> int | None:
        """The errno number the call failed with; None if it succeeded or did not return."""
        value = self.outcomes.get(call, "")
        number = getattr(errno, value, None) if value.startswith("E") else None
        return number if isinstance(number, int) else None

    def succeeded(self, call: str) -> bool:
        return self.outcomes.get(call, "").startswith("ok:")

    def returned(self, call: str) -> int | None:
        value = self.outcomes.get(call, "")
        return int(value.removeprefix("ok:")) if value.startswith("ok:") else None


def with_seccomp(spec: Spec, seccomp: Seccomp) -> Spec:
    """``spec`` with ``seccomp`` and no core dumps: SIGSYS (TRAP, KILL_PROCESS) dumps core by
    default (signal(7)), and the dump would land in the container's cwd."""
    assert spec.linux is not None and spec.process is not None
    spec.linux.seccomp = seccomp
    limits = [r for r in spec.process.rlimits or [] if r.type != "RLIMIT_CORE"]
    spec.process.rlimits = [*limits, Rlimit(type="RLIMIT_CORE", soft=0, hard=0)]
    return spec


@functools.cache
def _libseccomp() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    return lib


def syscall_number(name: str) -> int:
    """This architecture's number for ``name``, from the host's libseccomp."""
    lib = _libseccomp()
    if lib is None:
        pytest.skip("no libseccomp on the host to resolve syscall numbers")
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    number = int(lib.seccomp_syscall_resolve_name(name.encode()))
    assert number >= 0, f"libseccomp knows no syscall {name} here"
    return number


@functools.cache
def native_syscall_names() -> tuple[str, ...]:
    """Every syscall name of this architecture, as the host's libseccomp knows them."""
    lib = _libseccomp()
    if lib is None:
        pytest.skip("no libseccomp on the host to list this architecture's syscall names")
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    names = []
    for number in range(1024):
        ptr = lib.seccomp_syscall_resolve_num_arch(0, number)  # 0: SCMP_ARCH_NATIVE
        if ptr:
            names.append(ctypes.string_at(ptr).decode())
            libc.free(ptr)  # seccomp_syscall_resolve_num_arch(3): the caller frees the name
    return tuple(names)


# --- the seccomp agent ------------------------------------------------------------------------


@dataclass
class Connection:
    """One accepted connection: each recvmsg's bytes and fds, and whether EOF was seen."""

    chunks: list[tuple[bytes, list[int]]] = field(default_factory=list)
    eof: bool = False
    error: str | None = None

    @property
    def data(self) -> bytes:
        return b"".join(chunk for chunk, _ in self.chunks)

    @property
    def fds(self) -> list[int]:
        return [fd for _, fds in self.chunks for fd in fds]


class Agent:
    """The listener of ``listenerPath``: accepts connections in a thread and reads each one to
    end of file (an unfinished one is given up after ``read_timeout``)."""

    def __init__(self, path: Path, *, read_timeout: float = 10.0) -> None:
        assert len(os.fsencode(path)) < 108, f"socket path too long for sun_path: {path}"
        self.path = path
        self.read_timeout = read_timeout
        self.connections: list[Connection] = []
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection()
            with self._lock:
                self.connections.append(record)
            with conn:
                self._read(conn, record)

    def _read(self, conn: socket.socket, record: Connection) -> None:
        conn.settimeout(self.read_timeout)
        space = socket.CMSG_SPACE(16 * array.array("i").itemsize)
        try:
            while True:
                data, ancdata, _flags, _ = conn.recvmsg(65536, space)
                fds: list[int] = []
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        got = array.array("i")
                        got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                        fds += list(got)
                if not data and not fds:
                    record.eof = True
                    return
                record.chunks.append((data, fds))
        except TimeoutError:
            record.error = f"no end of file within {self.read_timeout:g} s"
        except OSError as exc:
            record.error = f"recvmsg failed: {exc}"

    def finished(self, count: int, timeout: float = 10.0) -> list[Connection]:
        """Waits until ``count`` connections were read to their end (or given up on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                done = [c for c in self.connections if c.eof or c.error]
                if len(done) >= count and len(done) == len(self.connections):
                    return list(self.connections)
            time.sleep(0.01)
        with self._lock:
            return list(self.connections)

    def close(self) -> None:
        self._done.set()
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self.connections:
            for fd in conn.fds:
                try:
                    os.close(fd)
                except OSError:
                    continue  # already closed by the test
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# seccomp_unotify(2); the ioctl numbers are _IOWR('!', 0, struct seccomp_notif) (80 bytes) and
# _IOWR('!', 1, struct seccomp_notif_resp) (24 bytes) from <linux/seccomp.h>.
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
_NOTIF = struct.Struct("=QII iI Q 6Q")  # id, pid, flags, then struct seccomp_data
_RESP = struct.Struct("=QqiI")  # id, val, error, flags


@dataclass(frozen=True)
class Notification:
    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, ...]


def receive_notification(fd: int, timeout: float = 10.0) -> Notification:
    """SECCOMP_IOCTL_NOTIF_RECV once a notification is pending (the fd polls readable)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        raise AssertionError(f"no seccomp notification on the received fd within {timeout:g} s")
    buf = bytearray(_NOTIF.size)  # the kernel wants it zeroed (seccomp_unotify(2))
    fcntl.ioctl(fd, NOTIF_RECV, buf, True)
    nid, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buf)
    return Notification(nid, pid, nr, arch, tuple(args))


def answer(fd: int, notification: Notification, *, value: int = 0, error: int = 0) -> None:
    """SECCOMP_IOCTL_NOTIF_SEND: the call returns ``value``, or fails with errno ``error``."""
    buf = bytearray(_RESP.pack(notification.id, value, -error if error else 0, 0))
    fcntl.ioctl(fd, NOTIF_SEND, buf, True)


# --- the kernel's record of seccomp actions ---------------------------------------------------


class KernelLog:
    """The kernel log's records (/dev/kmsg) written since it was opened. The audit records of
    seccomp (type=1326, AUDIT_SECCOMP) land there when no audit daemon takes them."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)  # only what comes from now on
        self.lines: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return self.lines
            except BrokenPipeError:
                continue  # EPIPE: older records were overwritten meanwhile; read on
            self.lines.append(record.decode(errors="replace"))

    def seccomp_records(self, pid: int) -> list[str]:
        return [line for line in self.read() if "type=1326" in line and f" pid={pid} " in line]

    def close(self) -> None:
        os.close(self.fd)


@functools.cache
def _declared_flags(runtime: RuntimeClient) -> tuple[str, ...] | None:
    try:
        doc = runtime.features()
    except (RuntimeCallError, ValueError):
        return None
    linux = doc.get("linux")
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    flags = seccomp.get("supportedFlags") if isinstance(seccomp, dict) else None
    return tuple(flags) if isinstance(flags, list) else ()


def skip_unless_flag_supported(runtime: RuntimeClient, flag: str) -> None:
    """Skips unless ``features`` declares ``flag`` in linux.seccomp.supportedFlags
    (features-linux.md): whether a runtime supports a seccomp flag is its own to say."""
    flags = _declared_flags(runtime)
    if flags is None:
        pytest.skip(f"{runtime.name} has no `features` output declaring whether it supports {flag}")
    if flag not in flags:
        pytest.skip(f"{runtime.name}'s features declare no {flag} in linux.seccomp.supportedFlags")
