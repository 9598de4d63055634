"""UTS namespace: host and domain name (config.md: Hostname, Domainname; config-linux.md)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from conformance._support import (
    WAIT_FOREVER,
    grant,
    sh,
    skip_unless_declared_spec_version,
    wait_ready,
    without_namespace,
)

SHOW = "cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname"


@pytest.mark.spec("config.hostname.apply-hostname", "config-linux.namespaces.apply-ns-uts")
@given(hostname=strategies.hostnames())
def test_the_container_sees_the_configured_hostname(
    containers: ContainerFactory, hostname: str
) -> None:
    host_before = socket.gethostname()
    result = containers.run(containers.spec(["hostname"], hostname=hostname))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == hostname
    assert socket.gethostname() == host_before, "the host's own hostname changed"


@pytest.mark.spec("config-linux.namespaces.apply-ns-uts")
@given(hostname=strategies.hostnames(), domainname=strategies.domainnames())
def test_the_container_sees_the_configured_domainname(
    containers: ContainerFactory, hostname: str, domainname: str
) -> None:
    skip_unless_declared_spec_version(containers.client, "1.2.0", "domainname")
    host_domain = Path("/proc/sys/kernel/domainname").read_text()
    spec = containers.spec(sh(SHOW), hostname=hostname)
    spec.domainname = domainname
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [hostname, domainname]
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domain


@pytest.mark.spec("config-linux.namespaces.7")
def test_without_a_uts_namespace_the_host_name_is_shared(containers: ContainerFactory) -> None:
    spec = containers.spec(["hostname"])
    spec.hostname = None  # a hostname needs a UTS namespace of its own (config.md)
    without_namespace(spec, "uts")
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == socket.gethostname()


@pytest.mark.spec("config-linux.namespaces.apply-ns-uts")
def test_a_hostname_set_inside_stays_inside(containers: ContainerFactory) -> None:
    host_before = socket.gethostname()
    spec = grant(containers.spec(sh(WAIT_FOREVER)), "CAP_SYS_ADMIN")
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        changed = ctr.exec("sh", "-c", "hostname renamed-inside && hostname")
        assert changed.exit_code == 0, changed.stderr
        assert changed.stdout.strip() == "renamed-inside", "the probe could not rename"
        assert socket.gethostname() == host_before, "renaming inside renamed the host"
