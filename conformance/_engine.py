"""The engine from outside, for the full-stack tests (test_engine_*.py): its command line, its
directories, and what the host's kernel shows of what it made.

The engine (``bulkhead-engine``) is a black box here as the runtime is: it is run as a subprocess
(named by $BULKHEAD_ENGINE, else found beside this interpreter or on PATH; the tests skip, saying
so, where it is not installed), never imported. It runs with its ``--root`` and ``--exec-root``
inside the session's own directory, ``--runtime`` set to the binary the suite tests, and
``--cgroup-parent`` named with the session's token, so that the leak sentinel sees every mount
(overlays, network namespace files, /dev/shm), process (the per-container monitor) and cgroup
it leaves.

The fixtures built on it are in conformance._engine_fixtures.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import poll
from bulkhead.hostview import ProcessRef, is_alive, process_ref
from bulkhead.runtime import Call, CallLog, describe_exit
from bulkhead.suite import Suite
from conformance._mounts import MountEntry, host_mounts

ENGINE_SCRIPT = "bulkhead-engine"
# docker's exit status for an error of the engine itself, as opposed to the container's own
# (docker run reference, "Exit status": 125 when the daemon fails).
ENGINE_ERROR = 125
BUSYBOX = "bulkhead/busybox:test"
HTTPD = "bulkhead/httpd:test"
ENGINE_NETNS = "engine"  # exec_root/netns/engine: the namespace holding the bridge
DEFAULT_TIMEOUT = 60.0
HEX64 = re.compile(r"^[0-9a-f]{64}$")  # a container id, as docker's

# A container that waits until SIGTERM, says so in its log and exits 143 (128 + SIGTERM, the
# status a shell reports for a TERM death): PID 1 of a pid namespace ignores signals it has no
# handler for (pid_namespaces(7)), so the handler is what lets `stop` end it at once. /ready in
# its upper dir tells the host it got that far.
# (Another signal's handler ends `wait` but not the loop.)
IDLE = "trap 'echo got-TERM; exit 143' TERM; touch /ready; while :; do sleep 1000 & wait $!; done"


def engine_script() -> Path | None:
    """The engine's console script: $BULKHEAD_ENGINE if set (another build, or
    scripts/broken-engine), else beside this interpreter (a venv's bin), else on PATH."""
    chosen = os.environ.get("BULKHEAD_ENGINE")
    if chosen:
        return Path(chosen).absolute()
    beside = Path(sys.executable).parent / ENGINE_SCRIPT
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(ENGINE_SCRIPT)
    return Path(found) if found else None


def sh(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, "sh", *args]


# --- the command line --------------------------------------------------------------------------


@dataclass
class Engine:
    """``bulkhead-engine`` with fixed global options; every call is kept in ``log`` (the
    suite's, so a failure report lists the engine's calls with the runtime's)."""

    binary: Path
    root: Path
    exec_root: Path
    runtime: Path
    cgroup_parent: str
    log: CallLog = field(default_factory=CallLog)
    timeout: float = DEFAULT_TIMEOUT

    def argv(self, *args: str) -> tuple[str, ...]:
        return (
            str(self.binary), "--root", str(self.root), "--exec-root", str(self.exec_root),
            "--runtime", str(self.runtime), "--cgroup-parent", self.cgroup_parent, *args,
        )  # fmt: skip

    def __call__(
        self, *args: str, check: bool = True, timeout: float | None = None, cleanup: bool = False
    ) -> Call:
        argv = self.argv(*args)
        started = time.monotonic()
        limit = self.timeout if timeout is None else timeout
        # A process group of its own: a call that hangs is ended with what it started.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        problem = ""
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            exited = proc.poll() is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = _drain(proc)
            problem = (
                # `id=$(docker run -d ...)` returns once the CLI exits: a monitor that keeps
                # the CLI's stdout would hang every shell that reads it.
                f"{argv[0]} exited ({describe_exit(proc.returncode)}) but something it started "
                "keeps its stdout/stderr open"
                if exited
                else f"{' '.join(argv)} did not finish within {limit:g} s"
            )
        call = Call(argv, proc.returncode, out or "", err or "", time.monotonic() - started,
                    cleanup=cleanup)  # fmt: skip
        self.log.calls.append(call)
        if problem:
            raise AssertionError(problem + _quote(call))
        if check and call.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({describe_exit(call.returncode)}){_quote(call)}"
            )
        return call

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A long-running call (``logs -f``), read by the test; ended by the caller."""
        return subprocess.Popen(
            self.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip

    # --- verbs with the shapes the tests use ----------------------------------------------------
    def run_detached(self, *args: str) -> str:
        """``run -d ARGS...``: the id it prints (64 hex digits, as docker's)."""
        call = self("run", "-d", *args)
        cid = call.stdout.strip()
        assert HEX64.match(cid), f"run -d printed {call.stdout!r}, not a container id"
        return cid

    def inspect(self, ref: str) -> Inspected:
        call = self("inspect", ref)
        data = json.loads(call.stdout)
        assert isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict), (
            f"inspect {ref} printed {call.stdout[:300]!r}, not a JSON list of one object"
        )
        return Inspected(data[0], ref)

    def image_inspect(self, ref: str) -> dict[str, Any]:
        data = json.loads(self("image", "inspect", ref).stdout)
        if isinstance(data, list):
            assert len(data) == 1, f"image inspect {ref}: {len(data)} objects"
            data = data[0]
        assert isinstance(data, dict), f"image inspect {ref} printed no JSON object"
        return data

    def container_dirs(self) -> list[str]:
        """The ids under root/containers/ (the engine's records, read from the disk)."""
        with contextlib.suppress(FileNotFoundError):
            return sorted(e.name for e in os.scandir(self.root / "containers") if e.is_dir())
        return []

    def remove_all(self) -> None:
        ids = self.container_dirs()
        if ids:
            self("rm", "-f", *ids, cleanup=True, check=False)

    # --- the layout (docker's; the tests judge by it, not by paths the engine reports) ---------
    @property
    def overlay2(self) -> Path:
        return self.root / "overlay2"

    @property
    def image_db(self) -> Path:
        return self.root / "image" / "overlay2"

    def container_dir(self, cid: str) -> Path:
        return self.root / "containers" / cid

    def netns(self, name: str) -> Path:
        return self.exec_root / "netns" / name

    @property
    def engine_netns(self) -> Path:
        return self.netns(ENGINE_NETNS)

    def engine_links(self) -> list[Link]:
        return links_in(self.engine_netns)

    def snapshot(self) -> frozenset[str]:
        """The names the engine keeps per container and per image, read from the disk: layer
        and container dirs, l/ links, records, bundles, network namespace files, the OCI
        runtime's state dirs, layerdb and imagedb entries."""
        found: set[str] = set()
        for base in (
            self.overlay2, self.overlay2 / "l", self.root / "containers",
            self.image_db / "layerdb" / "sha256", self.image_db / "imagedb" / "content" / "sha256",
            self.exec_root / "bundles", self.exec_root / "netns",
        ):  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                found.update(
                    str(Path(e.path).relative_to(self.root.parent)) for e in os.scandir(base)
                )
        with contextlib.suppress(FileNotFoundError):
            for runtime_root in os.scandir(self.exec_root / "runtime"):
                for e in os.scandir(runtime_root.path):
                    found.add(str(Path(e.path).relative_to(self.root.parent)))
        return frozenset(found)


def _drain(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return "", "(output abandoned: a process the engine started holds it open)"


def _quote(call: Call) -> str:
    text = ""
    for name, value in (("stdout", call.stdout), ("stderr", call.stderr)):
        if value.strip():
            text += f"\n  {name}: " + value.strip()[-2000:].replace("\n", "\n          ")
    return text


@dataclass(frozen=True)
class Inspected:
    """One container as ``inspect`` reports it (docker's shape)."""

    data: dict[str, Any]
    ref: str = ""  # what inspect was asked for: a name, or the full id `run -d` printed

    def get(self, *keys: str) -> Any:
        value: Any = self.data
        for key in keys:
            assert isinstance(value, dict) and key in value, (
                f"inspect has no {'.'.join(keys)} (at {key!r}): {json.dumps(self.data)[:600]}"
            )
            value = value[key]
        return value

    @property
    def id(self) -> str:
        """The container's full id: the one it was asked by, else docker's ``Id``."""
        if HEX64.match(self.ref):
            return self.ref
        return str(self.get("Id"))

    @property
    def pid(self) -> int:
        return int(self.get("State", "Pid"))

    @property
    def running(self) -> bool:
        return bool(self.get("State", "Running"))

    @property
    def exit_code(self) -> int:
        return int(self.get("State", "ExitCode"))

    @property
    def graph(self) -> dict[str, str]:
        data = self.get("GraphDriver", "Data")
        assert isinstance(data, dict)
        return {str(k): str(v) for k, v in data.items()}

    @property
    def merged(self) -> Path:
        return Path(self.graph["MergedDir"])

    @property
    def upper(self) -> Path:
        return Path(self.graph["UpperDir"])

    @property
    def sandbox_key(self) -> Path:
        return Path(str(self.get("NetworkSettings", "SandboxKey")))

    def host_port(self, port: str = "80/tcp") -> int:
        bound = self.get("NetworkSettings", "Ports", port)
        assert bound, f"inspect shows no binding of {port}: {bound!r}"
        return int(bound[0]["HostPort"])


# --- refusals --------------------------------------------------------------------------------


def expect_engine_error(call: Call, what: str, *words: str) -> str:
    """A refusal as the engine promises it: exit 125, one line on stderr reading
    "bulkhead-engine: <message>" (no traceback), naming each of ``words``. Returns the line."""
    err = call.stderr.strip()
    assert call.returncode >= 0, (
        f"{what}: the engine died of a signal ({describe_exit(call.returncode)})"
    )
    assert call.returncode == ENGINE_ERROR, (
        f"{what}: expected the engine's error exit {ENGINE_ERROR}, got "
        f"{describe_exit(call.returncode)}{_quote(call)}"
    )
    lines = err.splitlines()
    assert len(lines) == 1, f"{what}: the error is not one line:\n{err}"
    assert lines[0].startswith(f"{ENGINE_SCRIPT}: "), f"{what}: unexpected error form: {err}"
    lowered = lines[0].lower()
    missing = [w for w in words if w.lower() not in lowered]
    assert not missing, f"{what}: the error does not say {missing}: {lines[0]}"
    return lines[0]


def expect_ok(call: Call, what: str) -> None:
    assert call.returncode == 0, f"{what} failed ({describe_exit(call.returncode)}){_quote(call)}"


# --- the host's view -------------------------------------------------------------------------


def wait_for_file(path: Path, timeout: float = 15.0) -> None:
    poll(lambda: True if path.exists() else None, timeout=timeout, what=f"{path} to appear")


def mounts_under(path: Path) -> list[MountEntry]:
    """The host's mounts at or below ``path`` (and overlays whose options name it)."""
    prefix = str(path).rstrip("/")
    return [
        m for m in host_mounts()
        if m.point == prefix or m.point.startswith(prefix + "/")
    ]  # fmt: skip


@dataclass(frozen=True)
class Link:
    """One line of ``ip -o link``: index, name, the peer's index (veth@ifN), master."""

    index: int
    name: str
    peer: int | None
    master: str | None
    mac: str | None


def parse_links(text: str) -> list[Link]:
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        index = int(parts[0].rstrip(":"))
        name, _, peer = parts[1].rstrip(":").partition("@")
        master = parts[parts.index("master") + 1] if "master" in parts else None
        mac = parts[parts.index("link/ether") + 1] if "link/ether" in parts else None
        peer_index = int(peer[2:]) if peer.startswith("if") and peer[2:].isdigit() else None
        found.append(Link(index, name, peer_index, master, mac))
    return found


def in_netns(netns: Path, *argv: str) -> str:
    """Runs a read-only command (``ip -o addr``) in the network namespace held by ``netns``."""
    done = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True,
                          timeout=10)  # fmt: skip
    assert done.returncode == 0, f"nsenter --net={netns} {' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


def links_in(netns: Path) -> list[Link]:
    return parse_links(in_netns(netns, "ip", "-o", "link", "show"))


def addresses_in(netns: Path) -> dict[str, list[str]]:
    """{interface: ["inet 172.30.0.2/16", ...]} from ``ip -o addr`` in that namespace."""
    found: dict[str, list[str]] = {}
    for line in in_netns(netns, "ip", "-o", "addr", "show").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            found.setdefault(parts[1], []).append(f"{parts[2]} {parts[3]}")
    return found


def host_network() -> tuple[frozenset[str], str, str]:
    """The machine's own network namespace, read only: its links, addresses and routes."""
    names = frozenset(os.listdir("/sys/class/net"))
    addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout  # fmt: skip
    return names, addrs, routes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_on(port: int) -> bool:
    """Whether a TCP socket of the host's network namespace listens on 127.0.0.1:``port``
    (/proc/net/tcp, proc(5): local address in hex, state 0A = LISTEN)."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == wanted and fields[3] == "0A":
            return True
    return False


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> bytes | None:
    """The body of GET http://127.0.0.1:port/path, or None if nothing answers with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return body if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_http(port: int, timeout: float = 15.0) -> bytes:
    return poll(lambda: http_get(port), timeout=timeout, what=f"an HTTP answer on 127.0.0.1:{port}")


def processes_naming(text: str) -> list[int]:
    """Live pids whose command line holds ``text`` (a container id: the monitor's argv)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in raw:
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[1])


def ref_of(pid: int) -> ProcessRef:
    """The process now holding ``pid``, named with its start time (a reused pid is another)."""
    return process_ref(pid)


def ended(ref: ProcessRef) -> bool:
    """Whether that very process has ended (gone, a zombie, or its pid now another's)."""
    return not is_alive(ref)


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cgroup_roots() -> list[Path]:
    """Every cgroup hierarchy's mount point (v1 controllers and the unified one)."""
    return [Path(m.point) for m in host_mounts() if m.fstype in ("cgroup", "cgroup2")]


def remove_cgroup_parent(name: str) -> list[str]:
    """Removes the engine's cgroup parent in every hierarchy (the runtime made it with the first
    container's cgroup; runtimes remove only the container's own). Returns what was found in it
    that should not have been: a child cgroup is a container's that was not removed."""
    leftovers = []
    for top in [root / name for root in cgroup_roots() if (root / name).is_dir()]:
        for child in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            leftovers.append(str(child))
            with contextlib.suppress(OSError):
                child.rmdir()
        try:
            top.rmdir()
        except OSError as exc:
            leftovers.append(f"{top} ({exc.strerror})")
    return leftovers


# --- engines of the session -----------------------------------------------------------------


def engine_for(suite: Suite, root: Path, exec_root: Path) -> Engine:
    binary = engine_script()
    if binary is None:
        pytest.skip(
            f"the engine is not installed here: no {ENGINE_SCRIPT} beside {sys.executable} "
            "or on PATH (./scripts/setup installs it; BULKHEAD_ENGINE names another)"
        )
    return Engine(binary, root, exec_root, suite.binary, f"/{suite.token}engine", suite.log)


def new_engine(suite: Suite, name: str) -> Engine:
    """A second engine of the session's (its own root and exec root in the session dir)."""
    return engine_for(suite, suite.workdir / name, suite.workdir / f"{name}-run")


def close_engine(engine: Engine, keep: Sequence[Path] = ()) -> list[str]:
    """Everything the engine still holds, removed: containers (rm -f), its network (network
    prune: the bridge and the engine's namespace), then any mount left below its directories
    (detached), but for the mounts in ``keep``. Returns what had to be removed by force."""
    problems = []
    engine.remove_all()
    if engine.engine_netns.exists():
        call = engine("network", "prune", check=False, cleanup=True)
        if call.returncode != 0:
            problems.append(f"network prune failed: {call.stderr.strip()}")
    for base in (engine.root, engine.exec_root):
        for m in sorted(mounts_under(base), key=lambda m: -len(m.point)):
            if Path(m.point) in keep:  # the caller's own (a tmpfs it made the root)
                continue
            problems.append(f"mount {m.point} ({m.fstype})")
            with contextlib.suppress(OSError):
                subprocess.run(["umount", "-l", m.point], check=False, capture_output=True)
    problems += remove_cgroup_parent(engine.cgroup_parent.strip("/"))
    return problems


def idle(engine: Engine, *options: str, image: str = BUSYBOX, script: str = IDLE) -> Inspected:
    """A detached container running ``script`` (default: wait for SIGTERM), once it is going."""
    cid = engine.run_detached(*options, image, *sh(script))
    info = engine.inspect(cid)
    if "touch /ready" in script:
        wait_for_file(info.upper / "ready")
    return info


class LineReader:
    """The lines a long-running call prints, read by a thread (a select on a buffered pipe would
    miss lines already read into the buffer)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def next(self, timeout: float = 10.0) -> str:
        """The next line, "" at the end of the output; fails after ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no output within {timeout:g} s from {' '.join(map(str, self.proc.args))}"  # type: ignore[arg-type]
            ) from None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.thread.join(timeout=5)


def wait_gone(refs: Sequence[ProcessRef], timeout: float = 10.0) -> None:
    poll(
        lambda: True if all(ended(r) for r in refs) else None,
        timeout=timeout,
        what="the processes to end: " + ", ".join(r.describe() for r in refs),
    )
