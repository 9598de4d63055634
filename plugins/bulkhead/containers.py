"""Containers for tests: made from a spec, always removed, with probes that run commands inside.

``ContainerFactory.container()`` is a context manager: on the way out it force-deletes the
container through the runtime, unmounts its overlay and removes its bundle, whatever happened
inside. It is meant to be session-wide, so a hypothesis test creates and destroys its own
containers example by example.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from bulkhead.bundle import Bundle, make_bundle
from bulkhead.report import compact_json, final_example
from bulkhead.rootfs import RootfsImage
from bulkhead.runtime import Call, RuntimeClient
from bulkhead.spec import Spec, State, default_spec

T = TypeVar("T")

# Every field the default spec uses exists in runtime-spec 1.0.2.
BASELINE_OCI_VERSION = "1.0.2"
# How much of a container's stdout/stderr a report or an error message quotes (the end of it).
QUOTE_LIMIT = 4000


def _tail(path: Path, limit: int = QUOTE_LIMIT) -> str:
    """The last ``limit`` characters of a file, or "" if it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text if len(text) <= limit else "[...]" + text[-limit:]


@dataclass(frozen=True)
class BundleRecord:
    """What a bundle held when its ``with`` block ended: for failure reports, read before the
    bundle is removed. ``example`` is the hypothesis example it belonged to (see CallLog)."""

    container_id: str
    path: Path
    config: str
    stdout: str
    stderr: str
    example: int | None = None

    def describe(self, *, kept: bool = False) -> str:
        where = f"kept at {self.path}" if kept else f"was {self.path} (removed)"
        lines = [f"container {self.container_id}: bundle {where}"]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = text.strip()
            if text:
                lines.append(f"  {name}: " + text.replace("\n", "\n          "))
        config = compact_json(self.config).replace("\n", "\n  ") if self.config else "(none)"
        lines.append("  config.json: " + config)
        return "\n".join(lines)


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


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    what: str = "condition",
    observed: Callable[[], str] | None = None,
) -> T:
    """Calls ``check`` until it returns something other than None; backs off up to 50 ms.

    On timeout the error says what was awaited and, from ``observed``, what was seen instead.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:g} s waiting for {what}"
            if observed is not None:
                message += f"; {observed()}"
            raise TimeoutError(message)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@dataclass
class Container:
    id: str
    bundle: Bundle
    client: RuntimeClient
    _stdio: list[IO[str]] = field(default_factory=list, repr=False)

    # --- lifecycle verbs -------------------------------------------------------------------
    def create(self, *, check: bool = True, console_socket: Path | None = None) -> Call:
        out = (self.bundle.path / "stdout").open("a+")
        err = (self.bundle.path / "stderr").open("a+")
        self._stdio += [out, err]
        return self.client.create(
            self.id, self.bundle.path, pid_file=self.bundle.path / "pid",
            console_socket=console_socket, stdout=out, stderr=err, check=check,
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
        """Polls ``state`` until it reports ``status``; a timeout names the last status seen
        and quotes the container's stderr (where its program said why it did not get there)."""
        last: list[State] = []

        def reached() -> State | None:
            state = self.state()
            last[:] = [state]
            return state if state.status == status else None

        def observed() -> str:
            seen = f"last status seen: {last[0].status} (pid {last[0].pid})" if last else "no state"
            return f"{seen}; {self.describe_stderr()}"

        return poll(
            reached, timeout=timeout, what=f"container {self.id} to be {status}", observed=observed
        )

    def describe_stderr(self) -> str:
        err = _tail(self.bundle.path / "stderr").strip()
        where = self.bundle.path / "stderr"
        return f"container stderr ({where}): " + (err.replace("\n", "\n  ") if err else "empty")

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
        # Every bundle kept this session (for failed tests, with --keep-failed).
        self.kept: list[Path] = []
        # What each bundle held when its block ended, since the last ``begin()``.
        self.records: list[BundleRecord] = []
        # With keep_failed: bundles of the current test, unmounted, waiting for its verdict.
        self.pending: list[BundleRecord] = []
        self._counter = itertools.count(1)

    # --- per-test bookkeeping (driven by the plugin) -------------------------------------------
    def begin(self) -> None:
        """A test starts: forget the records of the previous one."""
        self.records.clear()
        self.discard_pending()

    def settle(self, *, failed: bool) -> list[Path]:
        """The test's verdict is known: with keep_failed, a failed test's bundles stay (under
        ``@given`` those of the final example only), every other pending bundle goes. Returns
        the paths kept now."""
        if not failed:
            self.discard_pending()
            return []
        keep = final_example(self.pending)
        kept_ids = {id(r) for r in keep}
        for record in self.pending:
            if id(record) not in kept_ids:
                shutil.rmtree(record.path, ignore_errors=True)
        self.pending.clear()
        self.kept += [r.path for r in keep]
        return [r.path for r in keep]

    def discard_pending(self) -> None:
        for record in self.pending:
            shutil.rmtree(record.path, ignore_errors=True)
        self.pending.clear()

    def _record(self, cid: str, bundle: Bundle) -> BundleRecord:
        return BundleRecord(
            cid,
            bundle.path,
            _tail(bundle.config_path, 64_000),
            _tail(bundle.path / "stdout"),
            _tail(bundle.path / "stderr"),
            self.client.log.current_example(),
        )

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
        try:
            yield cid, bundle
        finally:
            # Whatever the test did with the id (even a create that should have been refused),
            # no container outlives its bundle. Deleting one that is gone is refused: fine.
            self.client.delete(cid, force=True, check=False, cleanup=True)
            record = self._record(cid, bundle)
            self.records.append(record)
            if self.keep_failed:
                # Whether the test failed is known only after it (a failed assertion after the
                # block, the leak sentinel): keep the files, unmounted, until settle().
                bundle.unmount()
                self.pending.append(record)
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
