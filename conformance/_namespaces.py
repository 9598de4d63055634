"""Helpers for the namespace modules: namespace identity read from the host, processes found
by their command line, and a sandbox network the test owns.

"Shared" and "joined" are judged by the kernel: two processes share a namespace exactly when
their /proc/<pid>/ns/<type> links name the same inode. What a program inside reports (a host
name, a device list) can match for other reasons, such as a new namespace inheriting a name.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from bulkhead.containers import Container, ContainerFactory, Result, poll
from bulkhead.hostview import NAMESPACE_FILES, namespace_id
from bulkhead.ipckeys import token_of
from bulkhead.sandbox import SandboxNetns, sandbox_netns
from bulkhead.spec import Spec
from conformance._support import WAIT_FOREVER, sh, wait_ready

HOST = "self"  # the test process lives in the host's namespaces


def shares(pid: int | str, kind: str, other: int | str = HOST) -> bool:
    """Whether ``pid`` is in the same namespace of type ``kind`` as ``other`` (the host)."""
    return namespace_id(pid, kind) == namespace_id(other, kind)


def namespaces_of(pid: int | str) -> dict[str, str]:
    """Every namespace the kernel shows for ``pid``, by the spec's type name."""
    found = {}
    for kind, name in NAMESPACE_FILES.items():
        with contextlib.suppress(FileNotFoundError):
            found[kind] = os.readlink(f"/proc/{pid}/ns/{name}")
    return found


def assert_own_namespace(ctr: Container, kind: str) -> str:
    """The container init's namespace of ``kind``; fails if it is the host's."""
    own = namespace_id(ctr.pid, kind)
    assert own != namespace_id(HOST, kind), (
        f"the container's init shares the host's {kind} namespace ({own})"
    )
    return own


@contextlib.contextmanager
def started(containers: ContainerFactory, spec: Spec | None = None) -> Iterator[Container]:
    """A started container (default: one that waits forever), once it has written /ready."""
    with containers.container(spec or containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        yield ctr


# --- processes ---------------------------------------------------------------------------------


def _cmdline(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1]


def find_process(argv: Sequence[str]) -> int | None:
    """The pid of a process whose command line is exactly ``argv``, if one is running."""
    wanted = list(argv)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _cmdline(entry.name) == wanted:
            return int(entry.name)
    return None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class BackgroundExec:
    """An exec that stays alive until the test has looked at it from the host.

    The exec'd shell carries the container id in its command line (``$0``), so the host finds
    exactly it; it waits in a ``sleep`` with no hold on the runtime's pipes, and ending that
    sleep (a process we started, by its pid) lets the shell and the exec call finish.
    """

    SCRIPT = "touch /execd; sleep 1000 </dev/null >/dev/null 2>&1; :"

    def __init__(self, ctr: Container) -> None:
        self.ctr = ctr
        self.argv = ["sh", "-c", self.SCRIPT, f"{ctr.id}-exec"]
        self._pool = ThreadPoolExecutor(max_workers=1)
        self.future: Future[Result] = self._pool.submit(ctr.exec, *self.argv, timeout=30)

    def pid(self, timeout: float = 10.0) -> int:
        """The host pid of the exec'd shell once it has written /execd (so it is past its own
        start-up, whatever the host saw of it earlier); fails if the exec ended first."""
        marker = self.ctr.bundle.upper / "execd"

        def running() -> int | None:
            pid = find_process(self.argv) if marker.exists() else None
            if pid is None and self.future.done():
                result = self.future.result()
                raise AssertionError(
                    f"exec ended before the process was seen: exit {result.exit_code}, "
                    f"{result.stdout!r} {result.stderr!r}"
                )
            return pid

        return poll(running, timeout=timeout, what=f"the exec'd shell of {self.ctr.id}")

    def finish(self) -> Result | None:
        """Ends the exec'd process (its sleep first, so the shell exits by itself)."""
        pid = find_process(self.argv)
        if pid is not None:
            for child in children_of(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        try:
            return self.future.result(timeout=10)
        except Exception:
            pid = find_process(self.argv)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return None
        finally:
            self._pool.shutdown(wait=True)


@contextlib.contextmanager
def background_exec(ctr: Container) -> Iterator[BackgroundExec]:
    running = BackgroundExec(ctr)
    try:
        yield running
    finally:
        running.finish()


# --- a network of the test's own ----------------------------------------------------------------


@contextlib.contextmanager
def sandbox(containers: ContainerFactory) -> Iterator[tuple[SandboxNetns, str]]:
    """A sandbox network namespace holding one dummy device; yields it and the device's name.

    Both carry the session token, and the namespace lives under the session's directory, so
    the leak sentinel would report (and remove) either if this block failed to.
    """
    name = containers.new_id()
    token = token_of(name)
    device = f"{token}d{int(name[len(token) :]) % 1000}"  # at most 14 characters (IFNAMSIZ)
    containers.base_dir.mkdir(parents=True, exist_ok=True)
    with sandbox_netns(containers.base_dir / f"{name}-netns") as ns:
        ns.add_dummy(device)
        yield ns, device
