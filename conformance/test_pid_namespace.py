"""PID namespace (config-linux.md: Namespaces, pid)."""

from __future__ import annotations

import os

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.hostview import namespace_id, nspid
from conformance._support import WAIT_FOREVER, sh, wait_ready, without_namespace

# The shell expands the glob itself, so listing /proc this way starts no process of its own.
LIST_PIDS = "for p in /proc/[0-9]*; do echo ${p#/proc/}; done"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_the_container_process_is_pid_1(containers: ContainerFactory) -> None:
    result = containers.run_args("sh", "-c", "echo $$")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_the_container_sees_only_its_own_processes(containers: ContainerFactory) -> None:
    result = containers.run_args("sh", "-c", LIST_PIDS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["1"], "processes outside the container are visible"


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid")
def test_exec_joins_the_container_pid_namespace(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        result = ctr.exec("sh", "-c", LIST_PIDS)
        assert result.exit_code == 0, result.stderr
        pids = {int(p) for p in result.stdout.split()}
        # PID 1 (the shell), its `sleep` child and the exec'd shell: nothing of the host's.
        assert 1 in pids and len(pids) <= 3, f"unexpected processes visible: {sorted(pids)}"
        assert os.getpid() not in pids or len(pids) <= 3


@pytest.mark.spec("config-linux.namespaces.apply-ns-pid", "config-linux.namespaces.6")
def test_the_host_sees_the_container_under_another_pid(containers: ContainerFactory) -> None:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        host_pid = ctr.pid
        assert host_pid != 1
        assert nspid(host_pid) == [host_pid, 1], "the init is not PID 1 of a child namespace"
        assert namespace_id(host_pid, "pid") != namespace_id("self", "pid")


@pytest.mark.spec("config-linux.namespaces.7")
def test_without_a_pid_namespace_the_host_one_is_shared(containers: ContainerFactory) -> None:
    spec = containers.spec(sh(WAIT_FOREVER))
    without_namespace(spec, "pid")
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        assert namespace_id(ctr.pid, "pid") == namespace_id("self", "pid")
        assert nspid(ctr.pid) == [ctr.pid]
