"""Host canaries and hostile root filesystems for the CVE regression tests (test_cve_*.py).

An attack on a runtime's path handling shows on the host as a change somewhere it should never
write: a file created or replaced, a node made, an owner changed, something mounted. A canary
is a directory of the test's own, under its temporary directory, holding files with known
content, owners and modes; a hostile rootfs points its symlinks (/dev, /proc, /dev/null, a mount
destination...) at the canary instead of at a real host path, so a vulnerable runtime harms only
the canary. ``Canary.snapshot`` records everything about the tree (lstat of every entry, file
contents, link targets, mounts at or under it) and ``assert_untouched`` compares.

Every "untouched" verdict needs a control proving the snapshot would have seen a change: see
``witness_control``, in which a container given the canary as a bind mount writes to it and
the host sees the write.

The runtime is started with extra inheritable descriptors (``run_with_fds``) through
posix_spawn(3), whose file actions place them at exactly the numbers asked for; everything else
Python holds is close-on-exec (PEP 446).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bulkhead.bundle import Bundle
from bulkhead.containers import ContainerFactory
from bulkhead.runtime import Call, RuntimeClient
from bulkhead.spec import Mount, Spec, User
from conformance._mounts import bind, host_mounts

# What the canary's files hold: seen inside a container only if a runtime let the canary in.
CANARY_TEXT = "bulkhead canary: a runtime followed a hostile path here\n"
# Where the witness control binds the canary inside its container.
WITNESS = "/bulkhead-witness"

Entry = tuple[object, ...]


@dataclass(frozen=True)
class Canary:
    """A directory of the test's own on the host that no runtime may touch."""

    path: Path

    def snapshot(self) -> dict[str, Entry]:
        """Everything a runtime could change: each entry's type, mode, owner, size, times,
        device numbers, content digest or link target, and the mounts at or under the tree."""
        seen: dict[str, Entry] = {}
        for where in [self.path, *sorted(self.path.rglob("*"))]:
            st = os.lstat(where)
            if stat.S_ISREG(st.st_mode):
                extra: object = hashlib.sha256(where.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(where)
            else:
                extra = None
            rel = str(where.relative_to(self.path))
            seen[rel] = (
                stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, st.st_ino, extra,
            )  # fmt: skip
        prefix = str(self.path)
        for m in host_mounts():
            if m.point == prefix or m.point.startswith(prefix + "/"):
                seen[f"mount {m.point}"] = (m.fstype, m.source)
        return seen

    def assert_untouched(self, before: dict[str, Entry], what: str) -> None:
        after = self.snapshot()
        changed = sorted(
            f"{k}: {before.get(k)} -> {after.get(k)}"
            for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)
        )
        assert not changed, f"{what} changed the host canary {self.path}:\n  " + "\n  ".join(
            changed
        )

    def file(self, name: str) -> Path:
        return self.path / name


def make_canary(base: Path, files: Sequence[str] = ("marker",), dirs: Sequence[str] = ()) -> Canary:
    """A canary tree at ``base/canary``: ``files`` (mode 0640, CANARY_TEXT) and ``dirs``,
    each directory holding one file of its own; names may mimic what a runtime would create
    (``null``, ``console``...) so that a runtime deleting and re-making them is seen."""
    root = base / "canary"
    root.mkdir(mode=0o755)
    for name in files:
        path = root / name
        path.write_text(CANARY_TEXT)
        path.chmod(0o640)
    for name in dirs:
        (root / name).mkdir(mode=0o755)
        (root / name / "inside").write_text(CANARY_TEXT)
    # Times in whole seconds in the past: a rewrite with the same content still changes them.
    for where in [root, *root.rglob("*")]:
        os.utime(where, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    return Canary(root)


def relative_link(bundle: Bundle, inside: str, target: Path) -> str:
    """A relative symlink target that, placed at ``inside`` in the bundle's rootfs, climbs out
    of the rootfs to ``target`` when a runtime resolves it on the host (resolved inside the
    container root, the ``..`` stop at its ``/``)."""
    link_dir = (bundle.rootfs / inside.lstrip("/")).parent
    return os.path.relpath(target, link_dir)


def plant_link(bundle: Bundle, inside: str, target: str) -> None:
    """Makes ``inside`` (a container path) a symlink to ``target`` in the bundle's rootfs,
    replacing what the image has there (the overlay records a whiteout in the upper)."""
    path = bundle.rootfs / inside.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()  # the image's /dev, /proc, /sys are empty directories
    path.symlink_to(target)


def without_dev_mounts(spec: Spec, keep: Sequence[str] = ()) -> Spec:
    """Drops the tmpfs on /dev and the mounts under it but ``keep``: the runtime then works in
    the rootfs's own /dev, where the image (an attacker) decides what is there."""
    assert spec.mounts is not None
    spec.mounts = [
        m
        for m in spec.mounts
        if m.destination in keep
        or (m.destination != "/dev" and not m.destination.startswith("/dev/"))
    ]
    return spec


def witness_control(
    containers: ContainerFactory, canary: Canary, spec: Spec, name: str = "witness-seen"
) -> None:
    """The control of every "canary untouched" verdict: the same config, given the canary as a
    bind mount, lets its program write a file there, and the host snapshot sees that file. The
    file is removed again, so the canary is as before for the test's own snapshot."""
    control = spec.model_copy(deep=True)
    assert control.mounts is not None and control.process is not None
    control.mounts.append(bind(WITNESS, canary.path, "rbind", "rw"))
    control.process.args = ["sh", "-c", f"echo seen >{WITNESS}/{name}"]
    # As root: the canary is root's, and the control is about the host seeing the write.
    control.process.user = User(uid=0, gid=0)
    before = canary.snapshot()
    result = containers.run(control)
    assert result.exit_code == 0, f"the witness control did not run: {result.stderr.strip()}"
    after = canary.snapshot()
    assert name in after and name not in before, (
        f"a container writing the canary through a bind was not seen on the host: {after}"
    )
    canary.file(name).unlink()


def with_mounts(spec: Spec, *mounts: Mount) -> Spec:
    assert spec.mounts is not None
    spec.mounts += list(mounts)
    return spec


# --- the runtime started with descriptors it should not pass on -------------------------------


@contextlib.contextmanager
def leaked_fds(canary: Canary) -> Iterator[dict[str, int]]:
    """Descriptors of the canary a careless caller might leave open: an O_PATH one on the
    directory (CVE-2024-21626's leak was an O_PATH fd of the host's /sys/fs/cgroup) and a
    read-only one on a file. Closed on the way out."""
    fds = {
        "dir": os.open(canary.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
        "file": os.open(canary.file("marker"), os.O_RDONLY | os.O_CLOEXEC),
    }
    try:
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def run_with_fds(
    client: RuntimeClient,
    *args: str,
    fds: dict[int, int],
    timeout: float | None = None,
    stdio_dir: Path | None = None,
) -> Call:
    """Runs one verb with ``fds`` (number in the runtime -> our descriptor) inherited at
    exactly those numbers, stdin /dev/null, stdout and stderr in files (a container's init may
    inherit them); the call is recorded in the client's log like any other."""
    argv = client.argv(*args)
    limit = client.timeout if timeout is None else timeout
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryFile("w+b", dir=stdio_dir))
        err = stack.enter_context(tempfile.TemporaryFile("w+b", dir=stdio_dir))
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stack.callback(os.close, null)
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ] + [(os.POSIX_SPAWN_DUP2, ours, theirs) for theirs, ours in sorted(fds.items())]
        started = time.monotonic()
        # setsid: a group of its own, so a timeout ends the runtime and what it started.
        pid = os.posix_spawnp(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)
        code = _wait(pid, limit)
        duration = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        call = Call(
            tuple(argv), code,
            out.read().decode(errors="replace"), err.read().decode(errors="replace"),
            duration, example=client.log.current_example(),
        )  # fmt: skip
    client.log.calls.append(call)
    return call


def _wait(pid: int, limit: float) -> int:
    deadline = time.monotonic() + limit
    delay = 0.002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"the runtime (pid {pid}) did not finish within {limit:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def fd_targets(pid: int) -> dict[int, str]:
    """What the host sees of a process's descriptors: fd number -> readlink of /proc/pid/fd/N."""
    found = {}
    base = Path(f"/proc/{pid}/fd")
    for entry in base.iterdir():
        with contextlib.suppress(OSError):
            found[int(entry.name)] = os.readlink(entry)
    return found


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name one inode (magic /proc links are followed to their file)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# --- a console socket (runtime.md create --console-socket; runc's protocol) --------------------


class ConsoleSocket:
    """A unix socket a runtime sends the pty master to (SCM_RIGHTS), as ``--console-socket``
    expects; the master is held, and its output drained, until the container's side closes, so
    the container is never hung up on."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.path = path
        self.output = b""
        self.received = False
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._server.bind(str(path))
        self._server.listen(1)
        self._server.settimeout(30)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket

        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            try:
                _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            except OSError:
                return
        if not fds:
            return
        self.received = True
        master = fds[0]
        try:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave descriptor is closed (pty(7))
                    break
                if not chunk:
                    break
                self.output += chunk
        finally:
            os.close(master)

    def close(self) -> None:
        self._server.close()
        self._thread.join(timeout=10)
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def console_socket(directory: Path) -> Iterator[ConsoleSocket]:
    sock = ConsoleSocket(directory / "console.sock")
    try:
        yield sock
    finally:
        sock.close()
