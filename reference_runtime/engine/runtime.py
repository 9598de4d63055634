"""The OCI runtime the engine drives, through its command line only (as dockerd's
``--add-runtime`` and containerd's shim do): ``create``, ``start``, ``state``, ``kill``,
``delete`` and ``exec`` with a ``--root`` of the engine's own.

Any runc-compatible binary works: ``runc``, ``crun``, ``reference`` (Bulkhead's own, the
``bulkhead-runtime`` script beside this interpreter) or a path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout

CALL_TIMEOUT = 60.0
# cgroup2 as mounted on a hybrid host (design.md §5): the v1 controllers sit under
# /sys/fs/cgroup/<name>, and the cgroup2 tree here.
HYBRID_CGROUP2 = Path("/sys/fs/cgroup/unified")


def cgroup_v2() -> bool:
    """A pure cgroup v2 host: the unified hierarchy is mounted at /sys/fs/cgroup itself."""
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


def _reference_binary() -> Path:
    beside = Path(sys.executable).parent / "bulkhead-runtime"
    if beside.is_file():
        return beside
    found = shutil.which("bulkhead-runtime")
    if found is None:
        raise EngineError(
            "failed to find runtime reference: no bulkhead-runtime beside "
            f"{sys.executable} or on PATH"
        )
    return Path(found)


def resolve_binary(name: str) -> Path:
    if name == "reference":
        return _reference_binary()
    if "/" in name:
        path = Path(name).absolute()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineError(f"failed to find runtime {name}: not an executable file")
        return path
    found = shutil.which(name)
    if found is None:
        raise EngineError(f"failed to find runtime {name}: not on PATH")
    return Path(found)


def _needs_hidden_controllers(binary: Path) -> bool:
    """crun 1.8 refuses every container on a hybrid host while a controller sits in the cgroup2
    tree; it runs when that tree lists none (design.md §5), which a private mount namespace per
    call can show it without changing the machine for anyone else."""
    if not binary.name.startswith(("crun", "krun")):
        return False
    try:
        return bool((HYBRID_CGROUP2 / "cgroup.controllers").read_text().split())
    except OSError:
        return False  # not a hybrid host: crun sees the host as it is


@dataclass(frozen=True)
class OciRuntime:
    name: str  # as the user gave it: "runc", "reference", "/path/to/x"
    binary: Path
    root: Path
    prefix: tuple[str, ...] = ()

    @classmethod
    def open(cls, name: str, layout: Layout) -> OciRuntime:
        binary = resolve_binary(name)
        key = "reference" if name == "reference" else binary.name
        prefix: tuple[str, ...] = ()
        if _needs_hidden_controllers(binary):
            empty = layout.exec_root / "empty"
            empty.touch(exist_ok=True)
            script = 'mount --bind "$0" "$1" && shift && exec "$@"'
            prefix = (
                "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                str(empty), str(HYBRID_CGROUP2 / "cgroup.controllers"),
            )  # fmt: skip
        return cls(name, binary, layout.runtime_root(key), prefix)

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, str(self.binary), "--root", str(self.root), *args]

    def call(self, *args: str, what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                self.argv(*args),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"failed to {what}: {self.name} did not answer in {exc.timeout:.0f} s"
            ) from None
        if check and done.returncode != 0:
            raise EngineError(f"failed to {what}: {self.name}: {last_line(done.stderr)}")
        return done

    def create(
        self, cid: str, bundle: Path, pid_file: Path, stdout: int, stderr: int
    ) -> subprocess.CompletedProcess[bytes]:
        """``create`` with the container's stdio: the runtime hands these pipes to the init
        (runtime.md: the process's stdio is the runtime's), so its output is not read here."""
        return subprocess.run(
            self.argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            timeout=CALL_TIMEOUT,
            check=False,
        )

    def start(self, cid: str) -> None:
        self.call("start", cid, what=f"start container {cid}")

    def kill(self, cid: str, signal: str, *, check: bool = True) -> bool:
        done = self.call("kill", cid, signal, what=f"signal container {cid}", check=check)
        return done.returncode == 0

    def delete(self, cid: str) -> None:
        """``delete --force``: the container is gone whatever state it was in; a container the
        runtime does not know is already deleted."""
        done = self.call("delete", "--force", cid, what=f"delete container {cid}", check=False)
        if done.returncode != 0 and self.state(cid) is not None:
            raise EngineError(f"failed to delete container {cid}: {last_line(done.stderr)}")

    def state(self, cid: str) -> dict[str, Any] | None:
        done = self.call("state", cid, what=f"query container {cid}", check=False)
        if done.returncode != 0:
            return None
        try:
            state = json.loads(done.stdout)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def exec_argv(self, cid: str, args: Sequence[str], env: Sequence[str], cwd: str) -> list[str]:
        flags: list[str] = ["--cwd", cwd]
        for item in env:
            flags += ["--env", item]
        return self.argv("exec", *flags, cid, *args)


def last_line(text: str | bytes) -> str:
    """The runtime's own message: its last non-empty stderr line, without a JSON log wrapper."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no message"
    line = lines[-1]
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return line
        message = record.get("msg") if isinstance(record, dict) else None
        if isinstance(message, str):
            return message
    return line
