"""PID namespace (config-linux.md: Namespaces, pid)."""

from __future__ import annotations

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.hostview import namespace_id, nspid
from conformance._namespaces import (
    assert_own_namespace,
    background_exec,
    namespaces_of,
    shares,
    started,
)
from conformance._support import WAIT_FOREVER, host_file, sh, without_namespace

# The shell expands the glob itself, so listing /proc this way starts no process of its own.
LIST_PIDS = "for p in /proc/[0-9]*; do echo ${p#/proc/}; done"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_the_container_process_is_pid_1(containers: ContainerFactory) -> None:
    result = containers.run_args("sh", "-c", "echo $$")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_the_container_sees_only_its_own_processes(containers: ContainerFactory) -> None:
    # The control is in the listing itself: a child started first must show up next to PID 1,
    # so an empty or made-up /proc cannot pass, and nothing else may.
    script = f"sleep 1000 & child=$!; {LIST_PIDS}; echo child=$child; kill $child"
    result = containers.run_args("sh", "-c", script)
    assert result.exit_code == 0, result.stderr
    *pids, last = result.stdout.split() or ["(no output)"]
    assert last.startswith("child="), f"unexpected output: {result.stdout!r}"
    child = last.removeprefix("child=")
    assert child != "1"
    assert sorted(pids) == sorted(["1", child]), f"visible processes: {pids}"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_exec_joins_the_container_namespaces(containers: ContainerFactory) -> None:
    # Seen from the host, the exec'd process must be in every namespace of the container's
    # init. A process that joined only the mount namespace would still see the container's
    # /proc (so a listing from inside looks right), but its pid namespace would be the host's.
    with started(containers) as ctr:
        init = namespaces_of(ctr.pid)
        assert_own_namespace(ctr, "pid")
        with background_exec(ctr) as execd:
            pid = execd.pid()
            joined, levels = namespaces_of(pid), nspid(pid)
            assert host_file(ctr, "/execd").exists(), "the exec'd process runs elsewhere"
        differ = {k: (init[k], joined.get(k)) for k in init if joined.get(k) != init[k]}
        assert not differ, f"exec'd process (host pid {pid}) vs init (init, exec'd): {differ}"
        assert len(levels) == 2 and levels[0] == pid, f"NSpid of the exec'd process: {levels}"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid", "config-linux.namespaces.6")
def test_the_host_sees_the_container_under_another_pid(containers: ContainerFactory) -> None:
    with started(containers) as ctr:
        host_pid = ctr.pid
        assert host_pid != 1
        assert nspid(host_pid) == [host_pid, 1], "the init is not PID 1 of a child namespace"
        assert namespace_id(host_pid, "pid") != namespace_id("self", "pid")


@pytest.mark.spec("config-linux.namespaces.7")
def test_without_a_pid_namespace_the_host_one_is_shared(containers: ContainerFactory) -> None:
    spec = containers.spec(sh(f"echo $$ > /pid; {WAIT_FOREVER}"))
    without_namespace(spec, "pid")
    with started(containers, spec) as ctr:
        assert shares(ctr.pid, "pid"), "the container got a pid namespace of its own"
        assert nspid(ctr.pid) == [ctr.pid]
        # The init sees itself under its host pid.
        assert host_file(ctr, "/pid").read_text().strip() == str(ctr.pid)
