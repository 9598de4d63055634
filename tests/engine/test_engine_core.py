"""The engine's own logic without containers: the OCI config it writes, the seccomp profile,
sizes, users, environment, container files, the json-file log and exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from bulkhead.spec import find_schema_dir, validator
from reference_runtime.engine import containers, monitor, seccomp, spec
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.runtime import last_line

needs_schema = pytest.mark.skipif(
    find_schema_dir() is None, reason="runtime-spec schemas not found (../shared/oci-runtime-spec)"
)


def run_spec(**kwargs: object) -> spec.RunSpec:
    base: dict[str, object] = dict(args=["sh"], env=["PATH=/bin"], cwd="/", uid=0, gid=0,
                                   additional_gids=[], hostname="box")  # fmt: skip
    base.update(kwargs)
    return spec.RunSpec(**base)  # type: ignore[arg-type]


def config(tmp_path: Path, **kwargs: object) -> dict[str, object]:
    paths = spec.ContainerPaths(tmp_path / "hostname", tmp_path / "hosts",
                                tmp_path / "resolv.conf", tmp_path / "shm")  # fmt: skip
    return spec.oci_config(run_spec(**kwargs), rootfs=tmp_path / "merged",
                           netns=tmp_path / "netns", paths=paths,
                           cgroups_path="/bulkhead/x", cgroup_v2=False)  # fmt: skip


@needs_schema
def test_the_bundle_config_is_valid_against_the_official_schema(tmp_path: Path) -> None:
    document = config(tmp_path, memory=64 << 20, pids_limit=10, read_only=True)
    errors = sorted(validator("config-schema.json").iter_errors(document), key=str)
    assert not errors, [e.message for e in errors]


def test_docker_defaults_apply(tmp_path: Path) -> None:
    document = config(tmp_path)
    process = document["process"]
    assert isinstance(process, dict)
    caps = process["capabilities"]
    assert set(caps["bounding"]) == set(spec.DEFAULT_CAPABILITIES) and len(caps["bounding"]) == 14
    assert "inheritable" not in caps  # CVE-2022-24769: never inheritable
    linux = document["linux"]
    assert isinstance(linux, dict)
    assert "/proc/interrupts" in linux["maskedPaths"]
    assert "/sys/devices/virtual/powercap" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == list(spec.READONLY_PATHS)
    netns = [n for n in linux["namespaces"] if n["type"] == "network"]
    assert netns == [{"type": "network", "path": str(tmp_path / "netns")}]
    binds = {m["destination"]: m for m in document["mounts"] if m["type"] == "bind"}  # type: ignore[attr-defined]
    assert set(binds) == {"/dev/shm", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}


def test_read_only_binds_the_files_read_only(tmp_path: Path) -> None:
    mounts = config(tmp_path, read_only=True)["mounts"]
    hosts = next(m for m in mounts if m["destination"] == "/etc/hosts")  # type: ignore[attr-defined]
    assert "ro" in hosts["options"]
    mounts = config(tmp_path)["mounts"]
    hosts = next(m for m in mounts if m["destination"] == "/etc/hosts")  # type: ignore[attr-defined]
    assert "ro" not in hosts["options"]


def test_limits_reach_the_resources(tmp_path: Path) -> None:
    linux = config(tmp_path, memory=1 << 26, pids_limit=7)["linux"]
    assert linux["resources"]["memory"] == {"limit": 1 << 26}  # type: ignore[index]
    assert linux["resources"]["pids"] == {"limit": 7}  # type: ignore[index]
    assert "memory" not in config(tmp_path)["linux"]["resources"]  # type: ignore[index]


def test_the_seccomp_profile_refuses_what_the_default_refuses() -> None:
    profile = seccomp.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    by_name: dict[str, list[dict[str, object]]] = {}
    for rule in profile["syscalls"]:
        for name in rule["names"]:
            by_name.setdefault(name, []).append(rule)
    for name in ("keyctl", "mount", "unshare", "setns", "bpf", "io_uring_setup", "userfaultfd"):
        assert by_name[name][0]["errnoRet"] == seccomp.EPERM
    assert by_name["clone3"][0]["errnoRet"] == seccomp.ENOSYS
    flags = {r["args"][0]["value"] for r in by_name["clone"]}  # type: ignore[index]
    assert flags == set(seccomp.NAMESPACE_FLAGS.values())
    assert "read" not in by_name and "clone" in by_name


@pytest.mark.parametrize(
    ("text", "value"), [("123", 123), ("4k", 4096), ("64m", 64 << 20), ("1G", 1 << 30), ("9b", 9)]
)
def test_sizes(text: str, value: int) -> None:
    assert spec.parse_size(text, "--memory") == value


@pytest.mark.parametrize("text", ["", "m", "-1", "1.5g", "12x", "0"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(EngineError, match="failed to parse --memory"):
        spec.parse_size(text, "--memory")


def test_process_args_follow_docker() -> None:
    image = {"Entrypoint": ["/entry.sh"], "Cmd": ["sh"]}
    assert spec.process_args(image, []) == ["/entry.sh", "sh"]
    assert spec.process_args(image, ["echo", "x"]) == ["/entry.sh", "echo", "x"]
    assert spec.process_args({"Cmd": ["sh"]}, ["ls"]) == ["ls"]
    with pytest.raises(EngineError, match="no command"):
        spec.process_args({}, [])


def test_environment_later_wins_and_path_defaults() -> None:
    env = spec.environment({"Env": ["A=1", "B=2"]}, ["B=3", "C"], "box")
    assert env == ["A=1", "B=3", "HOSTNAME=box", "C=", f"PATH={spec.DEFAULT_PATH}"]
    with pytest.raises(EngineError, match="bad environment"):
        spec.environment({}, ["=x"], "box")


def test_users_resolve_through_the_images_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nwww:x:34:\nextra:x:50:www\n")
    assert spec.resolve_user("", tmp_path) == (0, 0, [])
    assert spec.resolve_user("www", tmp_path) == (33, 34, [50])
    assert spec.resolve_user("33:extra", tmp_path) == (33, 50, [50])
    assert spec.resolve_user("1234", tmp_path) == (1234, 0, [])
    with pytest.raises(EngineError, match="not in /etc/passwd"):
        spec.resolve_user("nobody", tmp_path)
    with pytest.raises(EngineError, match="not in /etc/group"):
        spec.resolve_user("www:nogroup", tmp_path)


def test_a_passwd_link_out_of_the_rootfs_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").symlink_to("/etc/passwd")
    with pytest.raises(EngineError, match="not in /etc/passwd"):
        spec.resolve_user("root", tmp_path)


def test_container_files(tmp_path: Path) -> None:
    paths = containers.write_files(tmp_path, hostname="box", ip="172.30.0.2",
                                   resolv_conf="search example\n")  # fmt: skip
    assert paths["hostname"].read_text() == "box\n"
    assert paths["hosts"].read_text().endswith("172.30.0.2\tbox\n")
    digest = hashlib.sha256(b"search example\n").hexdigest()
    assert paths["resolv.conf.hash"].read_text() == f"sha256:{digest}"


def test_loopback_nameservers_are_dropped(tmp_path: Path) -> None:
    source = tmp_path / "resolv.conf"
    source.write_text("nameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver ::1\nsearch x\n")
    assert containers.host_resolv_conf(source) == "nameserver 10.0.0.1\nsearch x\n"


def _record(cid: str, name: str, created: str) -> containers.Container:
    return containers.Container(Path(), {"ID": cid, "Name": "/" + name, "Created": created,
                                         "State": {}, "Bulkhead": {}}, {})  # fmt: skip


def test_containers_are_found_by_name_id_and_unique_prefix(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root", tmp_path / "exec")
    layout.ensure()
    store = containers.ContainerStore(layout)
    for cid, name, created in (("abc1" + "0" * 60, "one", "1"), ("abc2" + "0" * 60, "two", "2")):
        c = _record(cid, name, created)
        c.dir = layout.containers / cid
        c.dir.mkdir()
        c.save()
    assert store.get("one").id.startswith("abc1")
    assert store.get("abc2").name == "two"
    assert [c.name for c in store.all()] == ["one", "two"]
    with pytest.raises(EngineError, match="names 2"):
        store.get("abc")
    with pytest.raises(EngineError, match="no such container"):
        store.get("three")
    assert store.name_taken("two") == "abc2" + "0" * 60


def test_the_json_log_keeps_streams_and_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = monitor.LogWriter(path)
    log.feed("stdout", b"one\ntw")
    log.feed("stderr", b"err\n")
    log.feed("stdout", b"o\nthree")
    log.close_stream("stdout")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in records] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"), ("stdout", "three"),
    ]  # fmt: skip
    assert all(r["time"].endswith("Z") and len(r["time"]) == 30 for r in records)


def test_the_log_exists_before_the_monitor_says_ok(tmp_path: Path) -> None:
    """A foreground run opens the container's log as soon as the monitor says "ok"; a short
    --rm container can end and have its files removed before a later try, so the monitor
    makes the log before it returns from start (a recording fake stands in for the runtime)."""
    from types import SimpleNamespace

    log_path = tmp_path / "c-json.log"
    made_before_start: list[bool] = []

    class FakeRuntime:
        name = "fake"

        def create(self, cid: str, bundle: Path, pid_file: Path, out_w: int, err_w: int) -> object:
            pid_file.write_text(str(os.getpid()))  # a live process, as the init would be
            return SimpleNamespace(returncode=0)

        def start(self, cid: str) -> None:
            made_before_start.append(log_path.exists())

    m = monitor.Monitor.__new__(monitor.Monitor)
    m.container = SimpleNamespace(id="c", extra={}, state={}, log_path=log_path,
                                  save=lambda: None)  # fmt: skip
    m.runtime, m.bundle, m.proxy, m.pid, m.exit_code, m.log = (
        FakeRuntime(),
        tmp_path,
        None,
        0,
        None,
        None,
    )
    out_r, err_r = m.start()
    try:
        assert log_path.exists() and m.log is not None, "no log yet when the CLI is told ok"
        assert made_before_start == [False], "made once the container has started, not before"
    finally:
        os.close(out_r)
        os.close(err_r)


def test_exit_codes_are_the_shells() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert monitor.exit_code(os.waitpid(pid, 0)[1]) == 3
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    assert monitor.exit_code(os.waitpid(pid, 0)[1]) == 137


def test_runtime_messages_are_their_last_line() -> None:
    assert last_line("warn\nerror: no such file\n") == "error: no such file"
    assert last_line('{"level":"error","msg":"bad config"}\n') == "bad config"
    assert last_line("") == "no message"
