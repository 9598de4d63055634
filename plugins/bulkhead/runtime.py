"""A client for any OCI runtime binary, through its command line only.

The suite never links to a runtime: it runs ``<runtime> [global args] <verb> ...`` exactly as
containerd's shim or conmon would, with a timeout on every call. Each call is recorded (argv,
exit code, stdout, stderr, duration) so a failure report can show precisely what was asked of the
runtime and what it answered.

The command-line shape followed is runc's, which crun and youki mirror: ``kill ID [SIGNAL]``
with the signal positional, ``delete [--force] ID``, ``create --bundle B [--pid-file P] ID``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bulkhead.errors import UsageError
from bulkhead.options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from bulkhead.spec import State


def describe_exit(returncode: int) -> str:
    """``exit 1``, or ``killed by SIGKILL`` for a process that died of a signal (a crash is not
    a refusal, and a report must not make the two look alike)."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


@dataclass(frozen=True)
class Call:
    """One finished runtime invocation.

    ``cleanup`` marks the calls the suite makes to tidy up after a test (the factory's
    ``delete --force``, the sentinel's removals), so a report does not present them as the last
    thing the test asked of the runtime. ``example`` tells the hypothesis examples of one test
    apart (see ``CallLog.tagger``); None outside property tests.
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    cleanup: bool = field(default=False, repr=False)
    example: int | None = field(default=None, repr=False)

    def describe(self) -> str:
        cmd = " ".join(self.argv)
        first = f"$ {cmd}" + ("    (cleanup)" if self.cleanup else "")
        lines = [first, f"  {describe_exit(self.returncode)} after {self.duration * 1000:.0f} ms"]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = text.strip()
            if text:
                lines.append(f"  {name}: " + text.replace("\n", "\n          "))
        return "\n".join(lines)


class RuntimeCallError(Exception):
    """The runtime exited non-zero (or timed out) where success was expected."""

    def __init__(self, call: Call, message: str | None = None) -> None:
        self.call = call
        reason = call.stderr.strip() or call.stdout.strip() or "no output"
        super().__init__(
            message or f"{' '.join(call.argv)} failed ({describe_exit(call.returncode)}): {reason}"
        )


class RuntimeTimeout(RuntimeCallError):
    pass


@dataclass
class CallLog:
    """Every call made through a client, in order; the plugin slices it per test.

    ``tagger``, when set, is asked for the current hypothesis example of each call (the plugin
    sets it; see bulkhead.profiles.current_example), so that a report of a property test can
    show the calls of the final, shrunk example only.
    """

    calls: list[Call] = field(default_factory=list)
    tagger: Callable[[], int | None] | None = None

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    def current_example(self) -> int | None:
        return self.tagger() if self.tagger is not None else None

    def trim(self, keep: int = 0) -> None:
        """Forgets all but the last ``keep`` calls (a long session need not hold every call)."""
        del self.calls[: max(len(self.calls) - keep, 0)]


def resolve_runtime(name_or_path: str) -> Path:
    """A runtime named on PATH (``runc``) or given as a path; fails with a readable reason.

    A path is kept as given, made absolute but with symlinks NOT resolved: multi-call binaries
    and wrappers decide what they are from argv[0] (crun runs as krun through a symlink).
    """
    if "/" in name_or_path:
        path = Path(name_or_path).absolute()
        if not path.is_file():
            raise UsageError(f"--runtime {name_or_path}: no such file")
        if not os.access(path, os.X_OK):
            raise UsageError(f"--runtime {name_or_path}: not executable")
        return path
    found = shutil.which(name_or_path)
    if found is None:
        raise UsageError(
            f"--runtime {name_or_path}: not found on PATH "
            "(install it, or pass a path to the binary)"
        )
    return Path(found)


def hidden_cgroup2_controllers_prefix(empty_file: Path, cgroup2_mount: Path) -> tuple[str, ...]:
    """A command prefix that runs the runtime where the cgroup2 mount lists no controllers.

    crun (1.8 at least) refuses every container on a hybrid host while any controller sits in
    the cgroup2 hierarchy. Each call is run in a private mount namespace of its own in which an
    empty file is bind-mounted over ``cgroup.controllers``: crun then works with the v1
    controllers, and nothing changes for anyone else on the machine.
    """
    script = 'mount --bind "$0" "$1" && shift && exec "$@"'
    return (
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", script, str(empty_file), str(cgroup2_mount / "cgroup.controllers"),
    )  # fmt: skip


class RuntimeClient:
    """Runs one runtime binary with a fixed ``--root`` and optional extra global arguments."""

    def __init__(
        self,
        binary: Path,
        *,
        root: Path,
        global_args: Sequence[str] = (),
        prefix: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        log: CallLog | None = None,
    ) -> None:
        self.binary = binary
        self.root = root
        self.global_args = tuple(global_args)
        self.prefix = tuple(prefix)
        self.timeout = timeout
        self.log = log if log is not None else CallLog()

    @property
    def name(self) -> str:
        return self.binary.name

    def argv(self, *args: str) -> tuple[str, ...]:
        return (*self.prefix, str(self.binary), "--root", str(self.root), *self.global_args, *args)

    def call(
        self,
        *args: str,
        check: bool = True,
        timeout: float | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        cleanup: bool = False,
    ) -> Call:
        """Runs one verb. With ``stdout``/``stderr`` files the container may inherit them.

        ``create`` and detached ``run`` hand the runtime's stdio to the container's init; with
        pipes, reading them would wait for the container to exit. Callers give files there.
        ``cleanup`` marks a call made to tidy up, not asked for by the test (see ``Call``).
        """
        argv = self.argv(*args)
        started = time.monotonic()
        # Byte offset (not a text-file cookie): what this call adds is read back as bytes.
        err_pos = 0
        if stderr is not None:
            stderr.flush()
            err_pos = os.fstat(stderr.fileno()).st_size
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout is None else stdout,
            stderr=subprocess.PIPE if stderr is None else stderr,
            text=True,
            # A process group of its own, so a timeout ends the runtime and whatever it started
            # (all of it ours) instead of waiting for a child that still holds the pipes.
            start_new_session=True,
        )
        limit = self.timeout if timeout is None else timeout
        try:
            out, err = proc.communicate(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                # Something outside the group still holds the pipes: stop reading them.
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
                proc.wait()
                out, err = "", "(output abandoned: a process outside the group held it open)"
            timed_out = True
        if stderr is not None:
            # What the runtime itself printed before returning; the container has not run yet.
            stderr.flush()
            with open(f"/proc/self/fd/{stderr.fileno()}", "rb") as f:
                f.seek(err_pos)
                err = f.read().decode(errors="replace")
        call = Call(
            argv,
            proc.returncode,
            out or "",
            err or "",
            time.monotonic() - started,
            cleanup=cleanup,
            example=self.log.current_example(),
        )
        self.log.calls.append(call)
        if timed_out:
            raise RuntimeTimeout(call, f"{' '.join(argv)} did not finish within {limit:g} s")
        if check and call.returncode != 0:
            raise RuntimeCallError(call)
        return call

    # The verbs. Each returns the Call; ``check=False`` lets a test look at a refusal.

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        check: bool = True,
    ) -> Call:
        args = ["create", "--bundle", str(bundle)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        if console_socket is not None:
            # runc's option: the pty master of process.terminal is sent there (SCM_RIGHTS).
            args += ["--console-socket", str(console_socket)]
        with contextlib.ExitStack() as stack:
            # The container's init inherits these: with pipes, reading them would wait for the
            # container to exit. Throw-away files keep the runtime's own messages readable.
            if stdout is None:
                stdout = stack.enter_context(tempfile.TemporaryFile("w+"))
            if stderr is None:
                stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            return self.call(*args, container_id, check=check, stdout=stdout, stderr=stderr)

    def start(self, container_id: str, *, check: bool = True) -> Call:
        return self.call("start", container_id, check=check)

    def state(self, container_id: str) -> State:
        call = self.call("state", container_id)
        try:
            return State.model_validate(json.loads(call.stdout))
        except ValueError as exc:
            raise RuntimeCallError(call, f"state output is not valid state JSON: {exc}") from exc

    def raw_state(self, container_id: str, *, check: bool = True) -> Call:
        return self.call("state", container_id, check=check)

    def kill(self, container_id: str, signal: str = "TERM", *, check: bool = True) -> Call:
        return self.call("kill", container_id, signal, check=check)

    def delete(
        self, container_id: str, *, force: bool = False, check: bool = True, cleanup: bool = False
    ) -> Call:
        args = ["delete", "--force"] if force else ["delete"]
        return self.call(*args, container_id, check=check, cleanup=cleanup)

    def run(
        self, container_id: str, bundle: Path, *, timeout: float | None = None, check: bool = False
    ) -> Call:
        """Foreground ``run``: the runtime exits with the container process's exit code."""
        return self.call("run", "--bundle", str(bundle), container_id, check=check, timeout=timeout)

    def exec(
        self,
        container_id: str,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str | None = None,
        process: Path | None = None,
        tty: bool = False,
        console_socket: Path | None = None,
        detach: bool = False,
        pid_file: Path | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Call:
        """runc's ``exec`` options; ``process`` (a process.json) stands in for ``args``.

        A detached exec leaves its process holding the stdio it was given: pass files as
        ``stdout``/``stderr`` then (as for ``create``), or the call waits for that process.
        """
        opts: list[str] = []
        for item in env:
            opts += ["--env", item]
        if cwd is not None:
            opts += ["--cwd", cwd]
        if user is not None:
            opts += ["--user", user]
        if process is not None:
            opts += ["--process", str(process)]
        if tty:
            opts.append("--tty")
        if console_socket is not None:
            opts += ["--console-socket", str(console_socket)]
        if detach:
            opts.append("--detach")
        if pid_file is not None:
            opts += ["--pid-file", str(pid_file)]
        return self.call("exec", *opts, container_id, *args, check=check, timeout=timeout,
                         stdout=stdout, stderr=stderr)  # fmt: skip

    def features(self) -> dict[str, object]:
        call = self.call("features")
        try:
            data = json.loads(call.stdout)
        except ValueError as exc:
            raise RuntimeCallError(call, f"features output is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise RuntimeCallError(call, "features output is not a JSON object")
        return data

    def version(self) -> str:
        """The first line of ``--version``, or why there is none."""
        try:
            done = subprocess.run(
                [*self.prefix, str(self.binary), "--version"],
                capture_output=True, text=True, timeout=self.timeout, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        first = (done.stdout or done.stderr).strip().splitlines()
        return first[0] if first else f"unknown (exit {done.returncode}, no output)"
