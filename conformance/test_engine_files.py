"""A container's files under containers/<id>/ and what the kernel shows of them: the hostname
file is the container's UTS name, hostname, hosts and resolv.conf are bind mounts of those files
(the container's mount table, read by the host), resolv.conf.hash is the sha256 of resolv.conf,
the json-file log holds what the process printed, stream by stream, with RFC 3339 times. Docker's
defaults apply: masked and read-only paths, the capability sets, a seccomp filter, judged from
/proc/<pid> of the container's init as the host sees it; --read-only makes the root read-only.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from bulkhead import images
from bulkhead.spec.defaults import (
    DOCKER_DEFAULT_CAPABILITIES,
    DOCKER_MASKED_PATHS,
    DOCKER_READONLY_PATHS,
)
from bulkhead.strategies._process_attrs import capability_names
from conformance._engine import BUSYBOX, Engine, idle, sh
from conformance._mounts import MountEntry, host_mounts, parse_mountinfo, top_mount

pytest_plugins = ("conformance._engine_fixtures",)
pytestmark = pytest.mark.engine

# RFC 3339 "date-time" (section 5.6); docker writes nanoseconds and "Z".
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
BIND_FILES = ("hostname", "hosts", "resolv.conf")


def where_in_its_filesystem(path: Path) -> tuple[str, str]:
    """(device, path inside its filesystem) of a host file: what the root field of a bind
    mount of it shows in mountinfo (proc(5): "the pathname of the directory in the filesystem
    which forms the root of this mount")."""
    real = os.path.realpath(path)
    holder = max(
        (m for m in host_mounts() if real == m.point or real.startswith(m.point.rstrip("/") + "/")),
        key=lambda m: len(m.point),
    )
    inside = real[len(holder.point.rstrip("/")) :]
    return holder.device, (holder.root.rstrip("/") + inside) or "/"


def container_mounts(pid: int) -> list[MountEntry]:
    return parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())


def uts_hostname(pid: int) -> str:
    """The container's UTS name, asked of the kernel in its namespace (read only)."""
    done = subprocess.run(["nsenter", f"--uts=/proc/{pid}/ns/uts", "hostname"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


@pytest.mark.spec("config.hostname.apply-hostname")
def test_hostname_hosts_and_resolv_conf_are_the_containers_files(engine: Engine) -> None:
    name = f"box-{secrets.token_hex(3)}"
    info = idle(engine, "--hostname", name)
    directory = engine.container_dir(info.id)
    host_name = Path("/proc/sys/kernel/hostname").read_text().strip()
    assert name != host_name
    assert (directory / "hostname").read_text() == f"{name}\n"
    assert uts_hostname(info.pid) == name, "the container's UTS hostname is not the file's"
    ip = str(info.get("NetworkSettings", "IPAddress"))
    hosts = (directory / "hosts").read_text()
    assert f"{ip}\t{name}" in hosts.splitlines(), f"hosts does not name the container: {hosts!r}"
    resolv = (directory / "resolv.conf").read_bytes()
    digest = (directory / "resolv.conf.hash").read_text().strip()
    assert digest.removeprefix("sha256:") == hashlib.sha256(resolv).hexdigest(), (
        f"resolv.conf.hash {digest!r} is not the sha256 of resolv.conf {resolv!r}"
    )

    # Bind mounts of exactly those files, in the container's own mount table (read by the
    # host): the filesystem and the path inside it that each mount shows.
    mounts = container_mounts(info.pid)
    for file in BIND_FILES:
        entry = top_mount(mounts, f"/etc/{file}")
        device, inside = where_in_its_filesystem(directory / file)
        assert entry is not None, f"/etc/{file} is not a mount in the container"
        assert (entry.device, entry.root) == (device, inside), (
            f"/etc/{file} is a mount of {entry.device} {entry.root}, not of {directory / file}"
        )
        seen = Path(f"/proc/{info.pid}/root/etc/{file}").read_bytes()
        assert seen == (directory / file).read_bytes(), f"/etc/{file} in the container differs"
    # The control: a file of the image is no mount of its own, it is on the root overlay.
    assert top_mount(mounts, "/etc/passwd") is None
    root = top_mount(mounts, "/")
    assert root is not None and root.fstype == "overlay"


def _times(records: list[dict[str, str]]) -> list[datetime.datetime]:
    parsed = []
    for record in records:
        value = record["time"]
        assert RFC3339.match(value), f"log time {value!r} is not RFC 3339"
        # Python 3.11 reads "Z" and cuts digits beyond microseconds.
        parsed.append(datetime.datetime.fromisoformat(value))
    return parsed


def test_the_json_log_holds_each_stream(engine: Engine) -> None:
    name = f"log-{secrets.token_hex(3)}"
    script = "echo out-1; echo err-1 >&2; sleep 0.1; echo out-2; echo err-2 >&2"
    before = datetime.datetime.now(datetime.UTC)
    run = engine("run", "--name", name, "--network", "none", BUSYBOX, *sh(script))
    after = datetime.datetime.now(datetime.UTC)
    assert run.stdout == "out-1\nout-2\n", f"run printed {run.stdout!r}"
    assert run.stderr.splitlines()[-2:] == ["err-1", "err-2"], run.stderr
    (cid,) = engine.container_dirs()  # the test's one container
    assert engine.inspect(name).get("State", "ExitCode") == 0
    log = engine.container_dir(cid) / f"{cid}-json.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for record in records:
        assert set(record) == {"log", "stream", "time"}, f"log record {record}"
    by_stream = {
        stream: [r["log"] for r in records if r["stream"] == stream]
        for stream in ("stdout", "stderr")
    }
    assert {r["stream"] for r in records} == {"stdout", "stderr"}
    assert by_stream["stdout"] == ["out-1\n", "out-2\n"]
    assert by_stream["stderr"] == [f"{m}\n" for m in images.ENTRYPOINT_MESSAGES] + [
        "err-1\n", "err-2\n",
    ]  # fmt: skip
    # Times are when each line was read: inside the run, in order per stream (one clock, UTC).
    times = _times(records)
    slack = datetime.timedelta(seconds=1)
    assert all(before - slack <= t <= after + slack for t in times), (before, times, after)
    for stream in ("stdout", "stderr"):
        own = [t for t, r in zip(times, records, strict=True) if r["stream"] == stream]
        assert own == sorted(own), f"{stream} times out of order: {own}"
    # `logs` gives each stream back on its own descriptor.
    logs = engine("logs", name)
    assert logs.stdout == "out-1\nout-2\n"
    assert logs.stderr.splitlines()[-2:] == ["err-1", "err-2"]


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _has_content(path: str) -> bool:
    if os.path.isdir(path):
        return bool(os.listdir(path))
    return os.path.exists(path)


@pytest.mark.spec(
    "config-linux.masked-paths.apply-masked-paths",
    "config-linux.readonly-paths.apply-readonly-paths",
    "config.linux-process.apply-capabilities-effective",
    "config.linux-process.apply-capabilities-bounding",
    "config.linux-process.apply-capabilities-permitted",
    "config.linux-process.apply-capabilities-inheritable",
)
def test_dockers_default_paths_capabilities_and_seccomp_apply(engine: Engine) -> None:
    info = idle(engine, "--network", "none")
    host_config = info.get("HostConfig")
    masked, readonly = list(host_config["MaskedPaths"]), list(host_config["ReadonlyPaths"])
    assert set(DOCKER_MASKED_PATHS) <= set(masked), f"HostConfig.MaskedPaths: {masked}"
    assert set(DOCKER_READONLY_PATHS) <= set(readonly), f"HostConfig.ReadonlyPaths: {readonly}"
    mounts = container_mounts(info.pid)
    root = f"/proc/{info.pid}/root"
    problems = []
    # The control for each path: the host's own /proc and /sys show something there.
    present = [p for p in masked if _has_content(p)]
    assert present, "none of the masked paths exists on this host: nothing to judge"
    for path in present:
        entry = top_mount(mounts, path)
        inside = os.stat(root + path)
        if os.path.isdir(root + path):
            ok = entry is not None and entry.fstype == "tmpfs" and entry.readonly
            ok = ok and not os.listdir(root + path)
        else:
            ok = entry is not None and inside.st_rdev == os.makedev(1, 3)
        if not ok:
            problems.append(f"masked {path}: mount {entry}")
    for path in [p for p in readonly if os.path.exists(p)]:
        entry = top_mount(mounts, path)
        if entry is None or not entry.readonly:
            problems.append(f"read-only {path}: mount {entry}")
    assert not problems, "\n".join(problems)

    status = _status(info.pid)
    wanted = sorted(DOCKER_DEFAULT_CAPABILITIES)
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert capability_names(int(status[field], 16)) == wanted, f"{field}: {status[field]}"
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
    # A seccomp filter (mode 2, proc(5)); the control: this process has none.
    assert status["Seccomp"].strip() == "2", f"Seccomp: {status['Seccomp']}"
    assert _status(os.getpid())["Seccomp"].strip() == "0"


@pytest.mark.spec("config.root.5")
def test_read_only_makes_the_root_read_only(engine: Engine) -> None:
    script = "touch /written && echo wrote; grep ' / / ' /proc/self/mountinfo"
    control = engine("run", "--rm", "--network", "none", BUSYBOX, *sh(script))
    assert control.stdout.startswith("wrote\n"), control.stdout
    assert "rw" in control.stdout.split()[6].split(","), control.stdout
    call = engine("run", "--rm", "--read-only", "--network", "none", BUSYBOX, *sh(script))
    assert "wrote" not in call.stdout and "Read-only file system" in call.stderr, (
        f"a write to / under --read-only: {call.stdout!r} {call.stderr!r}"
    )
    options = call.stdout.split()[5].split(",")
    assert "ro" in options, f"/ is mounted {options}"
