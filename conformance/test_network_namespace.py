"""Network namespace (config-linux.md: Namespaces, network)."""

from __future__ import annotations

import os

import pytest

from bulkhead.containers import ContainerFactory
from conformance._support import sh, without_namespace

# /proc/net/dev lists the devices of the reader's network namespace, one per line after two
# header lines; it needs no tool in the container beyond the shell.
LIST_DEVICES = "tail -n +3 /proc/net/dev | cut -d: -f1"


def host_devices() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.mark.spec("config-linux.namespaces.apply-ns-network")
def test_a_new_network_namespace_holds_only_loopback(containers: ContainerFactory) -> None:
    result = containers.run_args("sh", "-c", LIST_DEVICES)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["lo"]


@pytest.mark.spec("config-linux.namespaces.apply-ns-network")
def test_host_interfaces_are_invisible_inside(containers: ContainerFactory) -> None:
    result = containers.run_args("ls", "/sys/class/net")
    assert result.exit_code == 0, result.stderr
    inside = set(result.stdout.split())
    assert not (inside & (host_devices() - {"lo"})), f"host devices visible: {sorted(inside)}"


@pytest.mark.spec("config-linux.namespaces.7")
def test_without_a_network_namespace_host_devices_are_shared(
    containers: ContainerFactory,
) -> None:
    spec = containers.spec(sh(LIST_DEVICES))
    without_namespace(spec, "network")
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert set(result.stdout.split()) == host_devices()
