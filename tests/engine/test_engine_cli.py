"""The engine's command line end to end with runc: what only the engine itself can be asked
(crash recovery, the monitor, one-line errors). The full-stack checks of what a container sees
are conformance tests (conformance/test_engine_*.py) and run for every runtime."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENGINE = Path(sys.executable).parent / "bulkhead-engine"
CGROUP_ROOT = Path("/sys/fs/cgroup")

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the engine mounts and makes namespaces: root only"
    ),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(
        not ENGINE.is_file(), reason="bulkhead-engine is not installed in this venv"
    ),
]


class Engine:
    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.exec_root = base / "run"
        self.parent = f"/bh-unit-{secrets.token_hex(4)}"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(ENGINE), "--root", str(self.root), "--exec-root", str(self.exec_root),
                "--runtime", "runc", "--cgroup-parent", self.parent, *args]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return done

    def inspect(self, ref: str) -> dict[str, Any]:
        document = json.loads(self("inspect", ref).stdout)[0]
        assert isinstance(document, dict)
        return document

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if str(self.root) in line or
                    str(self.exec_root) in line]  # fmt: skip

    def cleanup(self) -> None:
        for cid in self("ps", "-aq", check=False).stdout.split():
            self("rm", "-f", cid, check=False)
        self("network", "prune", check=False)
        for controller in CGROUP_ROOT.iterdir():
            parent = controller / self.parent.lstrip("/")
            if parent.is_dir():
                for child in parent.iterdir():
                    if child.is_dir():
                        child.rmdir()
                parent.rmdir()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    e = Engine(tmp_path_factory.mktemp("engine"))
    e("image", "build-test")
    try:
        yield e
    finally:
        e.cleanup()
        assert e.mounts() == []


def test_a_foreground_run_gives_the_exit_code_and_both_streams(engine: Engine) -> None:
    done = engine("run", "--rm", "--network", "none", "bulkhead/busybox:test",
                  "sh", "-c", "echo out; echo err >&2; exit 3", check=False)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "out\n" in done.stdout and "err\n" not in done.stdout
    assert "err\n" in done.stderr
    assert engine("ps", "-aq").stdout == ""  # --rm


def test_a_killed_monitor_is_noticed_and_its_container_cleaned(engine: Engine) -> None:
    cid = engine("run", "-d", "bulkhead/busybox:test", "sleep", "600").stdout.strip()
    record = json.loads((engine.root / "containers" / cid / "config.v2.json").read_text())
    monitor, init = record["Bulkhead"]["MonitorPid"], record["State"]["Pid"]
    assert Path(f"/proc/{init}").exists()  # the control: it runs
    os.kill(monitor, signal.SIGKILL)  # our own engine's monitor, by its pid
    deadline = time.monotonic() + 10
    while Path(f"/proc/{monitor}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Path(f"/proc/{init}").exists()  # the container outlived its monitor
    engine("ps")  # the next command collects
    state = engine.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    assert "monitor died" in state["Error"]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{init}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{init}").exists()
    assert not (engine.exec_root / "netns" / cid).exists()
    engine("rm", cid)
    assert [m for m in engine.mounts() if not m.endswith("/netns/engine")] == []


def test_a_half_created_container_is_removed_by_the_next_command(engine: Engine) -> None:
    cid = engine("run", "-d", "--network", "none", "bulkhead/busybox:test", "true").stdout.strip()
    path = engine.root / "containers" / cid / "config.v2.json"
    deadline = time.monotonic() + 10
    while json.loads(path.read_text())["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    record = json.loads(path.read_text())
    record["State"]["Status"] = "created"  # as a `run` killed before its monitor answered leaves it
    path.write_text(json.dumps(record))
    engine("ps", "-a")
    assert not path.parent.exists()
    rw = record["Bulkhead"]["RwLayer"]
    assert not (engine.root / "overlay2" / rw).exists()
    assert not (engine.root / "overlay2" / f"{rw}-init").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "no/such:image", "true"), "no such image"),
        (("run", "--memory", "lots", "bulkhead/busybox:test"), "failed to parse --memory"),
        (("run", "-p", "99999:80", "bulkhead/busybox:test"), "port"),
        (("run", "--network", "none", "-P", "bulkhead/httpd:test"), "needs --network bridge"),
        (("run", "--name=b@d", "bulkhead/busybox:test"), "must match"),
        (("run", "--no-such-flag", "bulkhead/busybox:test"), "unrecognized arguments"),
        (("inspect", "nothing-here"), "no such container"),
        # A runtime that refuses every create: everything made before it is undone.
        (("run", "--runtime", "/bin/false", "-P", "bulkhead/httpd:test"), "failed to create"),
    ],
)
def test_errors_are_one_line_and_leave_nothing(
    engine: Engine, args: tuple[str, ...], message: str
) -> None:
    before = sorted(p.name for p in (engine.root / "overlay2").iterdir())
    done = engine(*args, check=False)
    assert done.returncode == 125, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bulkhead-engine: "), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (engine.root / "overlay2").iterdir()) == before
    assert engine("ps", "-aq").stdout == ""
    assert [m for m in engine.mounts() if not m.endswith("/netns/engine")] == []


def test_a_taken_name_is_refused(engine: Engine) -> None:
    engine("run", "-d", "--name", "taken", "--network", "none", "bulkhead/busybox:test", "true")
    done = engine(
        "run", "--name", "taken", "--network", "none", "bulkhead/busybox:test", check=False
    )
    assert done.returncode == 125 and "the name taken is in use" in done.stderr
    engine("rm", "-f", "taken")
