"""The state store: one directory per container under ``--root``, written atomically, locked.

Layout of ``<root>/<id>/``::

    state.json   what create recorded (pid, start time, bundle, cgroup, config); replaced by
                 write-to-temporary + rename, so a reader sees the old or the new file, never half
    exec.fifo    the init blocks opening it for writing until ``start`` opens it for reading;
                 gone once started (its presence is what "created" means)
    (the directory itself is flock()ed by every verb that changes the container)

``mkdir`` of the directory is what reserves an id: two concurrent creates cannot both win.
"""

from __future__ import annotations

import os

from reference_runtime import jsonio
from reference_runtime.errors import Exists, NotFound, SpecError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
FIFO = "exec.fifo"
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
MAX_ID = 1024


def check_id(container_id: str) -> None:
    """runc's rule: letters, digits and ``_+-.``, not ``.`` or ``..`` (ids name directories)."""
    if not container_id:
        raise SpecError("container id must not be empty")
    if container_id in (".", "..") or not set(container_id) <= ID_CHARS:
        raise SpecError(f"invalid container id {container_id!r}: use letters, digits and _+-.")
    if len(container_id) > MAX_ID:
        raise SpecError(f"invalid container id: longer than {MAX_ID} characters")


class Store:
    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.root, container_id, FIFO)

    def reserve(self, container_id: str) -> str:
        """Creates the container's directory; Exists if the id is taken."""
        check_id(container_id)
        try:
            os.makedirs(self.root, 0o711, exist_ok=True)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "mkdir", self.root) from None
        path = self.dir(container_id)
        try:
            # 0711: a container process running as another uid may still open the fifo.
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise Exists(f"container {container_id} already exists") from None
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "mkdir", path) from None
        return path

    def lock(self, container_id: str) -> int:
        """An exclusive flock on the container's directory; close the fd to release it."""
        import fcntl

        check_id(container_id)
        path = self.dir(container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"container {container_id} does not exist") from None
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "open", path) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def save(self, container_id: str, state: dict[str, Any]) -> None:
        path = os.path.join(self.dir(container_id), STATE_FILE)
        tmp = path + ".tmp"
        data = jsonio.dumps(state).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "write", path) from None

    def load(self, container_id: str) -> dict[str, Any]:
        check_id(container_id)
        path = os.path.join(self.dir(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"container {container_id} does not exist") from None
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "open", path) from None
        state = jsonio.loads(data)
        if not isinstance(state, dict):
            raise NotFound(f"container {container_id}: its state file is damaged")
        return state

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE)))

    def remove(self, container_id: str) -> None:
        path = self.dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:  # noqa: SIM105 - contextlib would cost start-up time
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.rmdir(path)
        except FileNotFoundError:
            pass
