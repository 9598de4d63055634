"""Network namespace (config-linux.md: Namespaces, network).

Every check has a network the test owns as its control: a sandbox network namespace holding a
dummy device (conformance/_namespaces.py), created for the test and gone after it. A container
that joins it by path must see exactly that device and loopback, so "sees only lo" cannot pass
merely because the listing is empty or the host has nothing but lo. Nothing is ever added to
the host's own network namespace.
"""

from __future__ import annotations

import os

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.sandbox import SandboxNetns, netns_inode
from bulkhead.spec import Namespace, Spec
from conformance._namespaces import sandbox, shares, started
from conformance._support import WAIT_FOREVER, host_file, sh, without_namespace

# /proc/net/dev lists the devices of the reader's network namespace, one per line after two
# header lines; /sys/class/net lists those of the namespace the sysfs was mounted in. The
# container's init records both before it signals readiness, so no exec is involved.
RECORD = (
    "tail -n +3 /proc/net/dev | cut -d: -f1 > /proc-devices; ls /sys/class/net > /sys-devices; "
    + WAIT_FOREVER
)


def host_devices() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def recorded(ctr: Container, view: str) -> set[str]:
    return set(host_file(ctr, f"/{view}-devices").read_text().split())


def netns_of(ctr: Container) -> int:
    return netns_inode(f"/proc/{ctr.pid}/ns/net")


def joining(containers: ContainerFactory, ns: SandboxNetns) -> Spec:
    """A spec whose container joins the sandbox by path instead of making a namespace."""
    spec = without_namespace(containers.spec(sh(RECORD)), "network")
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="network", path=str(ns.path)))
    return spec


@pytest.mark.spec("config-linux.namespaces.4")
def test_a_joined_network_namespace_shows_its_devices(containers: ContainerFactory) -> None:
    with sandbox(containers) as (ns, dummy), started(containers, joining(containers, ns)) as ctr:
        assert ns.devices() == {"lo", dummy}, "the sandbox is not what the test made"
        assert netns_of(ctr) == ns.inode, "the container is not in the namespace at the path"
        assert recorded(ctr, "proc") == {"lo", dummy}


@pytest.mark.spec("config-linux.namespaces.apply-ns-network", "config-linux.namespaces.6")
def test_a_new_network_namespace_holds_only_loopback(containers: ContainerFactory) -> None:
    # A sandbox with a device exists meanwhile: a new namespace must be neither it nor the host's.
    with sandbox(containers) as (ns, _), started(containers, containers.spec(sh(RECORD))) as ctr:
        own = netns_of(ctr)
        assert own != netns_inode("/proc/self/ns/net"), "the container shares the host's"
        assert own != ns.inode, "the container joined a namespace it was not given"
        assert recorded(ctr, "proc") == {"lo"}


@pytest.mark.spec("config-linux.namespaces.apply-ns-network")
def test_host_interfaces_are_invisible_inside(containers: ContainerFactory) -> None:
    with sandbox(containers) as (ns, dummy):
        # The control: the same listing in a container joining the sandbox shows its device.
        with started(containers, joining(containers, ns)) as ctr:
            assert recorded(ctr, "sys") == {"lo", dummy}
        with started(containers, containers.spec(sh(RECORD))) as ctr:
            inside = recorded(ctr, "sys")
    assert not inside & (host_devices() - {"lo"}), f"host devices visible: {sorted(inside)}"
    assert inside == {"lo"}


@pytest.mark.spec("config-linux.namespaces.7")
def test_without_a_network_namespace_host_devices_are_shared(
    containers: ContainerFactory,
) -> None:
    spec = without_namespace(containers.spec(sh(RECORD)), "network")
    with started(containers, spec) as ctr:
        assert shares(ctr.pid, "network"), "the container got a network namespace of its own"
        assert recorded(ctr, "proc") == host_devices()
