"""UTS namespace: host and domain name (config.md: Hostname, Domainname; config-linux.md).

A runtime that fails to isolate UTS must not let a test rename the machine: the test that
renames inside first proves from the host that the container's UTS namespace is not the host's,
and renames only from a process that is in that namespace. The leak sentinel checks the host's
names after every test as well, and puts them back if they changed.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from conformance._namespaces import assert_own_namespace, shares, started
from conformance._support import (
    WAIT_FOREVER,
    grant,
    host_file,
    sh,
    skip_unless_declared_spec_version,
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
    # The same name alone proves nothing: a new UTS namespace starts with a copy of its
    # creator's names. Sharing is the kernel's word: the init's namespace inode is the host's.
    spec = containers.spec(sh(f"hostname > /seen; {WAIT_FOREVER}"))
    spec.hostname = None  # a hostname needs a UTS namespace of its own (config.md)
    without_namespace(spec, "uts")
    with started(containers, spec) as ctr:
        assert shares(ctr.pid, "uts"), "the container got a UTS namespace of its own"
        assert host_file(ctr, "/seen").read_text().strip() == socket.gethostname()


# Renames only from a process whose own UTS namespace is the one given as $1, so an exec that
# left the process in the host's namespace (or one whose /proc/self is not its own) renames
# nothing; exit 3 says so.
RENAME = (
    '[ "$(readlink /proc/self/ns/uts)" = "$1" ] || { echo "uts=$(readlink /proc/self/ns/uts)"; '
    "exit 3; }; hostname renamed-inside && hostname"
)


@pytest.mark.spec("config-linux.namespaces.apply-ns-uts")
def test_a_hostname_set_inside_stays_inside(containers: ContainerFactory) -> None:
    host_before = socket.gethostname()
    spec = grant(containers.spec(sh(WAIT_FOREVER)), "CAP_SYS_ADMIN")
    with started(containers, spec) as ctr:
        # Proved from the host before anything is renamed: a runtime that gave the container
        # the host's UTS namespace fails here and the host keeps its name.
        own = assert_own_namespace(ctr, "uts")
        changed = ctr.exec("sh", "-c", RENAME, "rename", own)
        assert changed.exit_code == 0, f"not renamed: {changed.stdout} {changed.stderr}"
        assert changed.stdout.strip() == "renamed-inside", "the probe could not rename"
        # The rename landed in the container's namespace: its init sees the new name.
        seen = subprocess.run(
            ["nsenter", f"--uts=/proc/{ctr.pid}/ns/uts", "--", "hostname"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert seen.stdout.strip() == "renamed-inside"
        assert socket.gethostname() == host_before, "renaming inside renamed the host"
