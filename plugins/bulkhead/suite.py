"""One test session's machinery, assembled from options; usable without pytest.

A ``Suite`` owns a private working directory (bundles, the runtime's ``--root``), a runtime
client, the rootfs image, a container factory and the leak sentinel. Ids carry a token unique to
the session and xdist worker (``bh-<6 hex>-``) so that parallel workers, and other activity on
the machine, never collide with or get blamed for each other's containers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bulkhead.containers import ContainerFactory
from bulkhead.errors import BulkheadError, UsageError
from bulkhead.host import HostFacts, probe_host
from bulkhead.options import DEFAULT_TIMEOUT, REFERENCE_SCRIPT
from bulkhead.options import HIDE_CHOICES as HIDE_CHOICES
from bulkhead.profiles import current_example
from bulkhead.rootfs import RootfsImage, build_rootfs
from bulkhead.runtime import (
    CallLog,
    RuntimeCallError,
    RuntimeClient,
    hidden_cgroup2_controllers_prefix,
    resolve_runtime,
)
from bulkhead.sentinel import Sentinel


@dataclass(frozen=True)
class SuiteOptions:
    runtime: str = "runc"
    runtime_args: tuple[str, ...] = ()
    runtime_root: Path | None = None
    keep_failed: bool = False
    hide_cgroup2_controllers: str = "auto"
    timeout: float = DEFAULT_TIMEOUT


def reference_runtime() -> Path:
    """Bulkhead's own runtime: the ``bulkhead-runtime`` console script of this environment,
    beside the interpreter (``sys.executable`` is not resolved: in a venv, its bin dir)."""
    path = Path(sys.executable).parent / REFERENCE_SCRIPT
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise UsageError(
            f"--runtime reference: Bulkhead's reference runtime is not installed here: no "
            f"executable {REFERENCE_SCRIPT} beside {sys.executable} (looked for {path}); "
            "install Bulkhead with it (./scripts/setup), or name another runtime"
        )
    return path


def resolve_binary(name: str) -> Path:
    """The runtime binary for ``--runtime``: ``reference``, a name on PATH, or a path kept as
    given (absolute, symlinks not resolved; see resolve_runtime)."""
    if name == "reference":
        return reference_runtime()
    return resolve_runtime(name)


def is_crun(binary: Path, version: str = "") -> bool:
    """crun, under its own name, as krun (a symlink to crun), or behind a wrapper that passes
    ``--version`` through (scripts/broken-runtime)."""
    names = ("crun", "krun")
    return binary.name.startswith(names) or version.lower().startswith(names)


def needs_hidden_controllers(choice: str, binary: Path, host: HostFacts, version: str = "") -> bool:
    """Whether runtime calls run where cgroup2 lists no controllers (see runtime.py).

    ``auto`` does so for crun on a hybrid host whose cgroup2 hierarchy holds a controller, the
    one combination crun refuses outright; every other runtime sees the host as it is.
    """
    if choice not in HIDE_CHOICES:
        raise UsageError(f"--hide-cgroup2-controllers must be one of {', '.join(HIDE_CHOICES)}")
    if choice != "auto":
        return choice == "yes"
    cg = host.cgroups
    return is_crun(binary, version) and cg.mode == "hybrid" and bool(cg.v2_controllers)


def _cannot_run(binary: Path, name: str, timeout: float) -> str | None:
    """Why ``binary`` cannot be started at all (exec format error, a missing interpreter);
    None if it starts, whatever it then answers: a runtime that refuses is a finding."""
    try:
        subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    except OSError as exc:
        return f"--runtime {name}: {binary} cannot be run: {exc.strerror or exc}"
    return None


def preflight(options: SuiteOptions, host: HostFacts | None = None) -> RootfsImage | None:
    """Checks, once and before any test, what every conformance test needs; all problems
    found become one UsageError (one message at start, not one error per test).

    Returns the rootfs image, built (or found in the cache) on the way.
    """
    host = host or probe_host()
    problems: list[str] = []
    try:
        binary = resolve_binary(options.runtime)
    except UsageError as exc:
        problems.append(str(exc))
    else:
        problem = _cannot_run(binary, options.runtime, options.timeout)
        if problem:
            problems.append(problem)
    if not host.is_root:
        problems.append(
            "the suite needs root (effective uid 0): it mounts each container's rootfs and "
            "runs the runtime as containerd or conmon would"
        )
    if not host.overlay:
        problems.append(
            "overlayfs is not available (not in /proc/filesystems): every bundle's rootfs is "
            "an overlay on the shared image (modprobe overlay)"
        )
    image = None
    try:
        image = build_rootfs()
    except (BulkheadError, OSError, subprocess.CalledProcessError) as exc:
        problems.append(f"cannot build the container image: {exc}")
    if problems:
        raise UsageError(
            "bulkhead cannot run the conformance suite on this host:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return image


@dataclass
class Suite:
    options: SuiteOptions
    worker: str = "main"
    host: HostFacts = field(default_factory=probe_host)

    def __post_init__(self) -> None:
        self.binary = resolve_binary(self.options.runtime)
        self.token = f"bh-{secrets.token_hex(3)}-"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bulkhead-{self.worker}-"))
        try:
            # mkdtemp makes it 0700: search permission (no listing) lets a user namespace's
            # root, an unprivileged host uid, reach the bundles below (runc and crun resolve
            # the rootfs from inside the new user namespace).
            self.workdir.chmod(0o711)
            self._assemble()
        except BaseException:
            # A suite that could not be built leaves no working directory behind.
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def _assemble(self) -> None:
        own_root = self.options.runtime_root is None
        self.runtime_root = (
            self.workdir / "state"
            if own_root
            else Path(self.options.runtime_root or "") / self.worker
        )
        self.runtime_root.mkdir(parents=True, exist_ok=True)
        prefix: tuple[str, ...] = ()
        self.version = RuntimeClient(
            self.binary, root=self.runtime_root, timeout=self.options.timeout
        ).version()
        self.hides_cgroup2_controllers = needs_hidden_controllers(
            self.options.hide_cgroup2_controllers, self.binary, self.host, self.version
        )
        if self.hides_cgroup2_controllers:
            empty = self.workdir / "empty"
            empty.touch()
            assert self.host.cgroups.v2_mount is not None
            prefix = hidden_cgroup2_controllers_prefix(empty, self.host.cgroups.v2_mount)
        # Calls are tagged with the hypothesis example they belong to, for the reports.
        self.log = CallLog(tagger=current_example)
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
            self.client.delete(container_id, force=True, cleanup=True)
        leftover = self.runtime_root / container_id
        if leftover.exists():
            shutil.rmtree(leftover)

    def close(self) -> None:
        """Removes the working directory, keeping the bundles of failed tests if asked to."""
        self.factory.discard_pending()
        if self.factory.kept:
            shutil.rmtree(self.runtime_root, ignore_errors=True)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.options.runtime_root is not None:
            with contextlib.suppress(OSError):
                self.runtime_root.rmdir()
