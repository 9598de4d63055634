"""``exec``: another process in a running container (runc's command line; the process it runs is
described like config.md "Process", and must be placed as the container's is).

Each exec'd process is judged from the host and by what it reports itself: its argv,
environment (its own /proc/$$/environ: what execve(2) gave it), cwd and ids; its namespaces
and cgroups compared with the container init's in /proc/<pid>/ns and /proc/<pid>/cgroup; its
capability sets in /proc/self/status (CVE-2022-29162: an exec'd process must not gain
inheritable or ambient capabilities nobody configured). test_pid_namespace.py checks that exec
joins the default namespaces; here a container with user and cgroup namespaces too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory, poll
from bulkhead.hostview import cgroup_paths, cmdline, is_rooted_in
from bulkhead.spec import Capabilities, Namespace, Process, Spec, User
from bulkhead.strategies import _process_attrs as attrs
from conformance._console import console_socket, fields, is_pty_master, read_until
from conformance._namespaces import background_exec, namespaces_of, started
from conformance._support import (
    WAIT_FOREVER,
    container_process,
    expect_refusal,
    expect_success,
    host_file,
    sh,
    stoppable,
    wait_ready,
    wait_stopped,
)
from conformance._userns import with_userns

# What the exec'd shell reports about itself: cwd, ids, then its environment as execve gave it
# (not the last command: sh would exec cat in its place, with the variables sh adds).
REPORT = "pwd; id -u; id -g; echo @env; cat /proc/$$/environ; echo @end"
EXEC_ENV = "BULKHEAD_EXEC=set by exec"


def parse_report(stdout: str) -> tuple[str, int, int, list[str]]:
    head, _, env = stdout.partition("@env\n")
    env = env.partition("@end")[0]
    cwd, uid, gid = head.split()
    return cwd, int(uid), int(gid), [entry for entry in env.split("\0") if entry]


def process_file(ctr: Container, process: Process) -> Path:
    """A process.json for ``exec --process``, in the bundle (removed with it)."""
    path = ctr.bundle.path / "exec-process.json"
    path.write_text(json.dumps(process.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


# --- what the exec'd process is ---------------------------------------------------------------


@pytest.mark.spec(
    "config.process.apply-args",
    "config.process.apply-env",
    "config.process.apply-cwd",
    "config.posix-platform-user.apply-user-uid-gid",
)
def test_exec_with_a_process_file_runs_that_process(containers: ContainerFactory) -> None:
    with started(containers) as ctr:
        # HOME given: runc and crun add one when it is missing (see test_process.py).
        env = ["PATH=/bin", "HOME=/", EXEC_ENV]
        process = Process(
            args=["sh", "-c", REPORT], env=env, cwd="/srv", user=User(uid=1000, gid=2000)
        )
        call = containers.client.exec(ctr.id, [], process=process_file(ctr, process))
        expect_success(call, "exec --process")
    assert parse_report(call.stdout) == ("/srv", 1000, 2000, env), call.stdout


@pytest.mark.spec(
    "config.process.apply-env",
    "config.process.apply-cwd",
    "config.posix-platform-user.apply-user-uid-gid",
)
def test_exec_options_set_env_cwd_and_user(containers: ContainerFactory) -> None:
    with started(containers) as ctr:
        # The control: without the options the exec'd process has the container's settings.
        plain = containers.client.exec(ctr.id, sh(REPORT))
        expect_success(plain, "exec")
        cwd, uid, gid, env = parse_report(plain.stdout)
        assert (cwd, uid, gid) == ("/", 0, 0) and EXEC_ENV not in env, plain.stdout
        # /bin/sh by its path: the process's PATH is not what this test is about.
        call = containers.client.exec(
            ctr.id, ["/bin/sh", "-c", REPORT], env=[EXEC_ENV], cwd="/srv", user="1000:2000"
        )
        expect_success(call, "exec --env --cwd --user")
    cwd, uid, gid, env = parse_report(call.stdout)
    assert (cwd, uid, gid) == ("/srv", 1000, 2000), call.stdout
    assert EXEC_ENV in env, f"--env {EXEC_ENV!r} missing from {env}"


@pytest.mark.spec("config.process.apply-terminal")
def test_exec_with_a_tty_gets_a_terminal(containers: ContainerFactory) -> None:
    script = (
        "if [ -t 0 ] && [ -t 1 ] && [ -t 2 ]; then echo tty=yes; else echo tty=no; fi; "
        'read line; echo "got=$line"'
    )
    with started(containers) as ctr, console_socket(containers.base_dir, ctr.id) as sock:
        stdout = (ctr.bundle.path / "exec-stdout").open("w+")
        with stdout:
            # --detach: the runtime returns once the process runs (containerd's shim does so).
            call = containers.client.exec(
                ctr.id, sh(script), tty=True, console_socket=sock.path, detach=True,
                stdout=stdout, stderr=stdout,
            )  # fmt: skip
            expect_success(call, "exec --tty --detach --console-socket")
        master = sock.master()
        assert is_pty_master(master), "the descriptor sent is not a pty master"
        os.write(master, b"typed at the host\n")
        text = read_until(master, "got=")
    assert fields(text).get("tty") == "yes", text
    assert "got=typed at the host" in text, text


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid", "config.process.apply-args")
def test_a_detached_exec_writes_the_pid_of_a_process_in_the_container(
    containers: ContainerFactory,
) -> None:
    with started(containers) as ctr:
        pid_file = ctr.bundle.path / "exec.pid"
        argv = ["sh", "-c", "touch /detached; exec sleep 1000", f"{ctr.id}-detached"]
        out = (ctr.bundle.path / "exec-stdout").open("w+")
        with out:
            call = containers.client.exec(
                ctr.id, argv, detach=True, pid_file=pid_file, stdout=out, stderr=out
            )
        expect_success(call, "exec --detach --pid-file")
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        assert text.isdigit(), f"the pid file holds {text!r}"
        pid = int(text)
        poll(lambda: True if host_file(ctr, "/detached").exists() else None,
             what="the detached process's marker")  # fmt: skip
        # The process the pid file names: in the container (only then is it ours to end),
        # the one exec'd, in the container's namespaces.
        assert is_rooted_in(pid, ctr.bundle.upper), f"pid {pid} is not in the container"
        try:
            # The shell execs sleep right after the marker: wait for that execve.
            poll(lambda: True if cmdline(pid) == ["sleep", "1000"] else None,
                 what=f"pid {pid} from the pid file to run the exec'd command",
                 observed=lambda: f"its cmdline is {cmdline(pid)}")  # fmt: skip
            assert namespaces_of(pid) == namespaces_of(ctr.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- where the exec'd process is --------------------------------------------------------------


def _all_namespaces(containers: ContainerFactory) -> Spec:
    spec = with_userns(containers.spec(sh(WAIT_FOREVER)))
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="cgroup"))
    return spec


@pytest.mark.spec(
    "config-linux.namespaces.apply-ns-user",
    "config-linux.namespaces.apply-ns-cgroup",
    "config-linux.namespaces.apply-ns-pid",
)
@pytest.mark.requires("userns", "cgroupns")
def test_exec_joins_every_namespace_of_the_container(containers: ContainerFactory) -> None:
    with started(containers, _all_namespaces(containers)) as ctr:
        init = namespaces_of(ctr.pid)
        host = namespaces_of("self")
        own = {k for k in ("user", "cgroup", "pid", "mount") if init.get(k) != host.get(k)}
        assert own == {"user", "cgroup", "pid", "mount"}, f"the container's own: {own}"
        with background_exec(ctr) as execd:
            joined = namespaces_of(execd.pid())
    differ = {k: (init[k], joined.get(k)) for k in init if joined.get(k) != init[k]}
    assert not differ, f"exec'd process vs init (init, exec'd): {differ}"


@pytest.mark.spec("config-linux.cgroups-path.4", "config-linux.cgroups-path.2")
def test_exec_joins_the_cgroups_of_the_container(containers: ContainerFactory) -> None:
    with started(containers) as ctr:
        init = cgroup_paths(ctr.pid)
        # The control: the test's own cgroups are not the container's.
        assert init != cgroup_paths("self"), "the container runs in the test's cgroups"
        with background_exec(ctr) as execd:
            joined = cgroup_paths(execd.pid())
    assert joined == init


def _capability_sets(stdout: str) -> dict[str, list[str]]:
    status = dict(line.split(":\t", 1) for line in stdout.splitlines() if ":\t" in line)
    return {
        name: attrs.capability_names(int(status[field], 16))
        for name, field in attrs.CAPABILITY_SET_FIELDS.items()
    }


def _sets(caps: Capabilities) -> dict[str, list[str]]:
    return {name: sorted(getattr(caps, name) or []) for name in attrs.CAPABILITY_SET_FIELDS}


@pytest.mark.cve("CVE-2022-29162")
@pytest.mark.spec(
    "config.linux-process.apply-capabilities-inheritable",
    "config.linux-process.apply-capabilities-ambient",
    "config.linux-process.apply-capabilities-effective",
    "config.linux-process.apply-capabilities-permitted",
    "config.linux-process.apply-capabilities-bounding",
)
def test_exec_gets_exactly_the_configured_capabilities(containers: ContainerFactory) -> None:
    spec = containers.spec(sh(WAIT_FOREVER))
    assert spec.process is not None and spec.process.capabilities is not None
    configured = spec.process.capabilities
    with started(containers, spec) as ctr:
        call = containers.client.exec(ctr.id, ["cat", "/proc/self/status"])
        expect_success(call, "exec")
        # The control: a process file that does configure inheritable and ambient sets gets them.
        granted = configured.model_copy(
            update={"inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
        )
        process = Process(args=["cat", "/proc/self/status"], env=["PATH=/bin"], cwd="/",
                          capabilities=granted)  # fmt: skip
        with_sets = containers.client.exec(ctr.id, [], process=process_file(ctr, process))
        expect_success(with_sets, "exec --process with inheritable and ambient capabilities")
    assert _capability_sets(call.stdout) == _sets(configured)
    assert _capability_sets(with_sets.stdout) == _sets(granted)


# --- when exec is refused -----------------------------------------------------------------------


@pytest.mark.spec("runtime.errors.1")
def test_exec_into_a_stopped_container_fails(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(stoppable())), start=True) as ctr:
        wait_ready(ctr)
        process = container_process(ctr)
        # The control: the same exec while the container runs.
        expect_success(containers.client.exec(ctr.id, sh("touch /while-running")), "exec")
        assert host_file(ctr, "/while-running").exists()
        ctr.kill("TERM")
        wait_stopped(ctr, process)
        call = containers.client.exec(ctr.id, sh("touch /after-stop"))
        expect_refusal(call, "exec into a stopped container")
        assert not host_file(ctr, "/after-stop").exists(), "the exec'd process ran anyway"
        assert ctr.status == "stopped"
