"""The per-container monitor: what containerd-shim is to a docker container.

``run`` starts one monitor per container, as a process of its own in a session of its own, so
the CLI can exit while the container runs. The monitor:

1. makes itself the child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER): the runtime's ``create``
   exits and leaves the container's init behind; the kernel then re-parents the init to the
   monitor, which alone can wait(2) for it and learn its real exit status;
2. binds the published ports on the host's loopback (a port in use fails here, before the
   container exists), then calls the runtime's ``create`` with two pipes as the init's stdout and
   stderr, and ``start``;
3. tells the CLI "ok" (or one line of why not) over a status pipe, and from then on writes what
   the container prints to ``<id>-json.log``, one JSON object per line, and forwards connections
   to the published ports (network/proxy.py);
4. when the init exits: records the exit code in config.v2.json, deletes the container from the
   runtime, unmounts its rootfs and /dev/shm, removes its network (docker's "stop" releases the
   same), and with ``--rm`` removes the container; then exits. A foreground ``run`` waiting on
   the status pipe gets "exit N" last.

If a monitor dies anyway, the next engine command finds the container running without it
(gc.py) and cleans up.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
from pathlib import Path
from typing import IO, Any

from reference_runtime.engine import containers
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.linux.proc import exit_code  # docker reports it the shell's way too

# How long output may keep arriving after the init died: the pipes reach end of file when the
# last process holding them exits, which a pid namespace's end makes prompt.
DRAIN_SECONDS = 5.0


class LogWriter:
    """docker's json-file format: {"log": "<line with its newline>", "stream": ..., "time": ...}."""

    def __init__(self, path: Path) -> None:
        self.file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - kept for the life of the monitor
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        pending = self.partial[stream] + data
        *lines, rest = pending.split(b"\n")
        for line in lines:
            self._write(stream, line + b"\n")
        self.partial[stream] = rest

    def close_stream(self, stream: str) -> None:
        if self.partial[stream]:
            self._write(stream, self.partial[stream])
            self.partial[stream] = b""

    def _write(self, stream: str, line: bytes) -> None:
        record = {"log": line.decode(errors="replace"), "stream": stream, "time": containers.now()}
        self.file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")


class Monitor:
    def __init__(self, layout: Layout, cid: str, status_fd: int) -> None:
        # Imports for a process of its own: the engine's modules, not the CLI's.
        from reference_runtime.engine.runtime import OciRuntime

        self.layout = layout
        self.container = containers.read(layout.containers / cid)
        self.status = os.fdopen(status_fd, "w", buffering=1)
        extra = self.container.extra
        self.runtime = OciRuntime.open(str(extra["Runtime"]), layout)
        self.bundle = Path(extra["Bundle"])
        self.proxy: Any = None
        self.pid = 0
        self.exit_code: int | None = None
        self.log: LogWriter | None = None

    # --- reporting to the CLI -----------------------------------------------------------
    def tell(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # the CLI may have gone: nothing to tell
            self.status.write(line.replace("\n", " ") + "\n")
            self.status.flush()

    # --- start --------------------------------------------------------------------------
    def start(self) -> tuple[int, int]:
        """Ports, create, start. Returns the read ends of the init's stdout and stderr."""
        bindings = self.container.extra.get("PortBindings") or []
        if bindings:
            from reference_runtime.engine.network.ports import PortBinding
            from reference_runtime.engine.network.proxy import PortProxy

            wanted = [PortBinding(**b) for b in bindings]
            ip = self.container.record["NetworkSettings"]["IPAddress"]
            # From the engine's namespace, as docker-proxy reaches a container from the host's:
            # the container sees its gateway as the peer, and the proxy does not keep the
            # container's own namespace alive.
            self.proxy = PortProxy(wanted, ip, self.layout.netns_dir / "engine")
            bound = self.proxy.bind()
            self.container.record["NetworkSettings"]["Ports"] = ports_document(bound)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        cid = self.container.id
        pid_file = self.bundle / "init.pid"
        done = self.runtime.create(cid, self.bundle, pid_file, out_w, err_w)
        os.close(out_w)
        os.close(err_w)
        if done.returncode != 0:
            message = _read_available(err_r) or _read_available(out_r)
            from reference_runtime.engine.runtime import last_line

            raise EngineError(f"failed to create container {cid}: {self.runtime.name}: "
                              f"{last_line(message)}")  # fmt: skip
        self.pid = int(pid_file.read_text().strip())
        try:
            self.runtime.start(cid)
        except EngineError:
            self.runtime.delete(cid)
            raise
        from reference_runtime.linux import proc

        state = self.container.state
        state.update(Status="running", Running=True, Pid=self.pid, StartedAt=containers.now())
        self.container.extra.update(
            MonitorPid=os.getpid(),
            MonitorStart=proc.start_time(os.getpid()),
            PidStart=proc.start_time(self.pid),
        )
        self.container.save()
        # Before the CLI hears "ok": a foreground run opens the log right after, and its open
        # file reads on even when a --rm container's files are gone by the time it reads.
        # Made only in pump, a short container's log could come and go between two of the
        # CLI's attempts to open it, and its output was lost (seen once in CI, 2026-12-02).
        self.log = LogWriter(self.container.log_path)
        return out_r, err_r

    # --- run ----------------------------------------------------------------------------
    def pump(self, out_r: int, err_r: int) -> None:
        log = self.log
        assert log is not None, "start made it"
        sel = selectors.DefaultSelector()
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, stream)
        pidfd = os.pidfd_open(self.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        deadline: float | None = None
        import time

        while sel.get_map() and not (deadline is not None and time.monotonic() > deadline):
            events = sel.select(timeout=0.5 if deadline is None else 0.1)
            for key, _ in events:
                if key.data == "exit":
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    self.reap()
                    deadline = time.monotonic() + DRAIN_SECONDS
                    continue
                fd = int(key.fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    log.feed(str(key.data), data)
                else:
                    log.close_stream(str(key.data))
                    sel.unregister(fd)
                    os.close(fd)
            if deadline is None:
                self.reap()  # the pidfd wakes us; this catches any other re-parented child
                if self.exit_code is not None:
                    deadline = time.monotonic() + DRAIN_SECONDS
        for stream in ("stdout", "stderr"):
            log.close_stream(stream)
        if self.exit_code is None:
            self.wait_exit()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exit_code = exit_code(status)

    def wait_exit(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
            self.exit_code = exit_code(status)
        except ChildProcessError:
            self.exit_code = 255  # not ours to wait for: the runtime did not leave it to us

    # --- end ----------------------------------------------------------------------------
    def finish(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        from reference_runtime.engine import lifecycle

        with self.layout.locked():
            self.container.reload()
            lifecycle.release(self.layout, self.container, self.runtime)
            state = self.container.state
            state.update(Status="exited", Running=False, Pid=0, ExitCode=self.exit_code,
                         FinishedAt=containers.now())  # fmt: skip
            self.container.save()
            if self.container.hostconfig.get("AutoRemove"):
                lifecycle.remove_files(self.layout, self.container)
        self.tell(f"exit {self.exit_code}")


def ports_document(bound: list[Any]) -> dict[str, list[dict[str, str]]]:
    """NetworkSettings.Ports as docker inspect shows it: {"80/tcp": [{"HostIp", "HostPort"}]}."""
    ports: dict[str, list[dict[str, str]]] = {}
    for b in bound:
        key = f"{b.container_port}/{b.proto}"
        ports.setdefault(key, []).append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
    return ports


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    root, exec_root, cid, status_fd = argv
    layout = Layout(Path(root), Path(exec_root))
    # A session of its own (Popen start_new_session): the CLI's terminal signals do not reach it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from reference_runtime.linux import libc
    from reference_runtime.linux.constants import PR_SET_CHILD_SUBREAPER

    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    monitor = Monitor(layout, cid, int(status_fd))
    try:
        out_r, err_r = monitor.start()
    except Exception as exc:
        if monitor.proxy is not None:
            monitor.proxy.stop()
        if not isinstance(exc, EngineError):
            exc = EngineError(f"failed to start container {cid}: {type(exc).__name__}: {exc}")
        monitor.tell(f"error {exc}")
        return 1
    monitor.tell("ok")
    if monitor.proxy is not None:
        monitor.proxy.start()
    try:
        monitor.pump(out_r, err_r)
    finally:
        monitor.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
