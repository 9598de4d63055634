"""One test session's machinery, assembled from options; usable without pytest.

A ``Suite`` owns a private working directory (bundles, the runtime's ``--root``), a runtime
client, the rootfs image, a container factory and the leak sentinel. Ids carry a token unique to
the session and xdist worker (``bh-<6 hex>-``) so that parallel workers, and other activity on
the machine, never collide with or get blamed for each other's containers.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bulkhead.containers import ContainerFactory
from bulkhead.errors import UsageError
from bulkhead.host import HostFacts, probe_host
from bulkhead.rootfs import build_rootfs
from bulkhead.runtime import (
    CallLog,
    RuntimeCallError,
    RuntimeClient,
    hidden_cgroup2_controllers_prefix,
    resolve_runtime,
)
from bulkhead.sentinel import Sentinel

HIDE_CHOICES = ("auto", "yes", "no")


@dataclass(frozen=True)
class SuiteOptions:
    runtime: str = "runc"
    runtime_args: tuple[str, ...] = ()
    runtime_root: Path | None = None
    keep_failed: bool = False
    hide_cgroup2_controllers: str = "auto"
    timeout: float = 30.0


def resolve_binary(name: str) -> Path:
    if name == "reference":
        raise UsageError(
            "--runtime reference: the reference runtime is not built yet; "
            "use runc, crun or a path to a runtime binary"
        )
    return resolve_runtime(name)


def needs_hidden_controllers(choice: str, binary: Path, host: HostFacts) -> bool:
    """Whether runtime calls run where cgroup2 lists no controllers (see runtime.py).

    ``auto`` does so for crun on a hybrid host whose cgroup2 hierarchy holds a controller, the
    one combination crun refuses outright; every other runtime sees the host as it is.
    """
    if choice not in HIDE_CHOICES:
        raise UsageError(f"--hide-cgroup2-controllers must be one of {', '.join(HIDE_CHOICES)}")
    if choice != "auto":
        return choice == "yes"
    cg = host.cgroups
    return binary.name.startswith("crun") and cg.mode == "hybrid" and bool(cg.v2_controllers)


@dataclass
class Suite:
    options: SuiteOptions
    worker: str = "main"
    host: HostFacts = field(default_factory=probe_host)

    def __post_init__(self) -> None:
        self.binary = resolve_binary(self.options.runtime)
        self.token = f"bh-{secrets.token_hex(3)}-"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bulkhead-{self.worker}-"))
        own_root = self.options.runtime_root is None
        self.runtime_root = (
            self.workdir / "state"
            if own_root
            else Path(self.options.runtime_root or "") / self.worker
        )
        self.runtime_root.mkdir(parents=True, exist_ok=True)
        prefix: tuple[str, ...] = ()
        self.hides_cgroup2_controllers = needs_hidden_controllers(
            self.options.hide_cgroup2_controllers, self.binary, self.host
        )
        if self.hides_cgroup2_controllers:
            empty = self.workdir / "empty"
            empty.touch()
            assert self.host.cgroups.v2_mount is not None
            prefix = hidden_cgroup2_controllers_prefix(empty, self.host.cgroups.v2_mount)
        self.log = CallLog()
        self.client = RuntimeClient(
            self.binary,
            root=self.runtime_root,
            global_args=self.options.runtime_args,
            prefix=prefix,
            timeout=self.options.timeout,
            log=self.log,
        )
        self.image = build_rootfs()
        self.factory = ContainerFactory(
            self.client,
            self.image,
            self.workdir / "bundles",
            self.token.rstrip("-"),
            keep_failed=self.options.keep_failed,
        )
        self.sentinel = Sentinel(
            self.token, [self.workdir, self.runtime_root], runtime_root=self.runtime_root
        )

    def delete_state(self, container_id: str) -> None:
        """Used by the sentinel to remove a leaked container through the runtime."""
        with contextlib.suppress(RuntimeCallError):
            self.client.delete(container_id, force=True)
        leftover = self.runtime_root / container_id
        if leftover.exists():
            shutil.rmtree(leftover)

    def close(self) -> None:
        """Removes the working directory, keeping the bundles of failed tests if asked to."""
        if self.factory.kept:
            shutil.rmtree(self.runtime_root, ignore_errors=True)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.options.runtime_root is not None:
            with contextlib.suppress(OSError):
                self.runtime_root.rmdir()
