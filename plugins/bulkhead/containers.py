"""Containers for tests: made from a spec, always removed, with probes that run commands inside.

``ContainerFactory.container()`` is a context manager: on the way out it force-deletes the
container through the runtime, unmounts its overlay and removes its bundle, whatever happened
inside. It is meant to be session-wide, so a hypothesis test creates and destroys its own
containers example by example.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from bulkhead.bundle import Bundle, make_bundle
from bulkhead.rootfs import RootfsImage
from bulkhead.runtime import Call, RuntimeClient
from bulkhead.spec import Spec, State, default_spec

T = TypeVar("T")

# Every field the default spec uses exists in runtime-spec 1.0.2.
BASELINE_OCI_VERSION = "1.0.2"


@dataclass(frozen=True)
class Result:
    """What a command run inside a container produced."""

    exit_code: int
    stdout: str
    stderr: str

    def fields(self) -> dict[str, str]:
        """The ``key=value`` pairs of bulkhead-probe's last output line."""
        lines = self.stdout.strip().splitlines()
        if not lines:
            return {}
        return dict(part.split("=", 1) for part in lines[-1].split() if "=" in part)

    @classmethod
    def of(cls, call: Call) -> Result:
        return cls(call.returncode, call.stdout, call.stderr)


def poll(check: Callable[[], T | None], *, timeout: float = 10.0, what: str = "condition") -> T:
    """Calls ``check`` until it returns something other than None; backs off up to 50 ms."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@dataclass
class Container:
    id: str
    bundle: Bundle
    client: RuntimeClient
    _stdio: list[IO[str]] = field(default_factory=list, repr=False)

    # --- lifecycle verbs -------------------------------------------------------------------
    def create(self, *, check: bool = True) -> Call:
        out = (self.bundle.path / "stdout").open("a+")
        err = (self.bundle.path / "stderr").open("a+")
        self._stdio += [out, err]
        return self.client.create(
            self.id, self.bundle.path, pid_file=self.bundle.path / "pid",
            stdout=out, stderr=err, check=check,
        )  # fmt: skip

    def start(self, *, check: bool = True) -> Call:
        return self.client.start(self.id, check=check)

    def state(self) -> State:
        return self.client.state(self.id)

    @property
    def status(self) -> str:
        return self.state().status

    @property
    def pid(self) -> int:
        pid = self.state().pid
        if not pid:
            raise AssertionError(f"container {self.id} has no pid in its state")
        return pid

    def kill(self, signal: str = "TERM", *, check: bool = True) -> Call:
        return self.client.kill(self.id, signal, check=check)

    def delete(self, *, force: bool = False, check: bool = True) -> Call:
        return self.client.delete(self.id, force=force, check=check)

    def exec(self, *args: str, env: Sequence[str] = (), timeout: float | None = None) -> Result:
        return Result.of(self.client.exec(self.id, args, env=env, timeout=timeout))

    # --- waiting -----------------------------------------------------------------------------
    def wait_for(self, status: str, timeout: float = 10.0) -> State:
        def reached() -> State | None:
            state = self.state()
            return state if state.status == status else None

        return poll(reached, timeout=timeout, what=f"container {self.id} to be {status}")

    def close_stdio(self) -> None:
        for f in self._stdio:
            f.close()
        self._stdio.clear()


class ContainerFactory:
    """Makes bundles and containers with ids unique to this session and worker."""

    def __init__(
        self,
        client: RuntimeClient,
        image: RootfsImage,
        base_dir: Path,
        id_prefix: str,
        *,
        keep_failed: bool = False,
    ) -> None:
        self.client = client
        self.image = image
        self.base_dir = base_dir
        self.id_prefix = id_prefix
        self.keep_failed = keep_failed
        self.kept: list[Path] = []
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"{self.id_prefix}-{next(self._counter)}"

    def spec(self, args: Sequence[str] = ("sh",), **kwargs: object) -> Spec:
        """The default spec (runc's ``spec`` with docker's masked and read-only paths).

        It declares ``BASELINE_OCI_VERSION``: the spec keeps compatibility within a major
        version, so a config is meant to name the oldest release whose features it uses, and a
        runtime that supports only 1.0/1.1 (crun 1.8) rightly refuses a config claiming 1.3.0.
        A test that needs a newer field skips when the runtime's ``features`` output declares an
        older ``ociVersionMax`` (see conformance/_support.py).
        """
        spec = default_spec(args, **kwargs)  # type: ignore[arg-type]
        spec.oci_version = BASELINE_OCI_VERSION
        return spec

    def _finalise(self, spec: Spec | dict[str, object], cid: str) -> Spec | dict[str, object]:
        # A cgroup named after the container keeps every test's cgroups findable (and the
        # sentinel able to tell ours from the machine's). Leave an explicit choice alone.
        if isinstance(spec, Spec) and spec.linux is not None and spec.linux.cgroups_path is None:
            spec = spec.model_copy(deep=True)
            assert spec.linux is not None
            spec.linux.cgroups_path = f"/{cid}"
        return spec

    @contextlib.contextmanager
    def bundle(
        self, spec: Spec | dict[str, object] | None = None, *, cid: str | None = None
    ) -> Iterator[tuple[str, Bundle]]:
        """A bundle alone (no container), removed afterwards; for tests that drive the CLI."""
        cid = cid or self.new_id()
        path = self.base_dir / cid
        if path.exists():  # a second bundle for an id in use (a test of duplicate ids)
            path = self.base_dir / f"{cid}-{next(self._counter)}"
        bundle = make_bundle(path, self.image, self._finalise(spec or self.spec(), cid))
        failed = False
        try:
            yield cid, bundle
        except BaseException:
            failed = True
            raise
        finally:
            # Whatever the test did with the id (even a create that should have been refused),
            # no container outlives its bundle. Deleting one that is gone is refused: fine.
            self.client.delete(cid, force=True, check=False)
            if failed and self.keep_failed:
                bundle.unmount()
                self.kept.append(bundle.path)
            else:
                bundle.remove()

    @contextlib.contextmanager
    def container(
        self,
        spec: Spec | dict[str, object] | None = None,
        *,
        create: bool = True,
        start: bool = False,
    ) -> Iterator[Container]:
        """A container made from ``spec``; created (and started) unless told otherwise."""
        with self.bundle(spec) as (cid, bundle):
            ctr = Container(cid, bundle, self.client)
            try:
                if create:
                    ctr.create()
                    if start:
                        ctr.start()
                yield ctr
            finally:
                ctr.close_stdio()  # our copies only; the bundle's exit deletes the container

    def run(
        self, spec: Spec | dict[str, object] | None = None, *, timeout: float | None = None
    ) -> Result:
        """Runs a container to completion in the foreground and returns what it produced."""
        with self.bundle(spec) as (cid, bundle):
            return Result.of(self.client.run(cid, bundle.path, timeout=timeout))

    def run_args(self, *args: str, **spec_kwargs: object) -> Result:
        """Shorthand: run ``args`` in a container built from the default spec."""
        return self.run(self.spec(args, **spec_kwargs))
