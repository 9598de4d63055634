"""Network devices moved into the container (config-linux.md "Network Devices", "Namespace
Lifecycle and Container Termination"; runtime-spec v1.2.0).

The machine's own network namespace is never touched: the runtime itself runs inside a sandbox
network namespace the test made (``nsenter --net=<sandbox>`` in front of every call), so the
"runtime network namespace" whose devices it moves is the sandbox, and the devices are the ends
of a veth pair made there (this kernel has no dummy driver). Every ``ip`` the test runs is
``nsenter``'d into a namespace checked first not to be the host's.

What moved where is read from the kernel: the sandbox's links, and the container's through its
init's /proc/<pid>/ns/net, both listed with ``ip -o``. A veth's other end stays in the sandbox,
so a device that left shows as a peer in another namespace, and a namespace that was destroyed
takes the pair with it.

A runtime that does not declare ``linux.netDevices`` in its ``features`` output is skipped:
runtimes older than the field ignore it silently (runc 1.1.5, crun 1.8.1).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory, poll
from bulkhead.ipckeys import token_of
from bulkhead.runtime import RuntimeCallError, RuntimeClient
from bulkhead.sandbox import sandbox_netns
from bulkhead.spec import NetDevice, Spec
from conformance._support import (
    assert_nothing_created,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
    sh,
    stoppable,
    wait_ready,
)

ADDRESS_V4 = "10.99.0.1/24"
ADDRESS_V6 = "fd00:99::1/64"
# netDevices arrived in runtime-spec 1.2.0: a config using it says so.
NET_DEVICES_VERSION = "1.2.0"


def skip_unless_net_devices(runtime: RuntimeClient) -> None:
    """features.md: ``linux.netDevices.enabled`` declares the field implemented."""
    try:
        features = runtime.features()
    except (RuntimeCallError, ValueError):
        pytest.skip(f"{runtime.name} has no `features` output declaring linux.netDevices")
    linux = features.get("linux")
    declared = linux.get("netDevices") if isinstance(linux, dict) else None
    if not (isinstance(declared, dict) and declared.get("enabled") is True):
        pytest.skip(f"{runtime.name}'s features do not declare linux.netDevices.enabled")


def in_netns(client: RuntimeClient, netns: Path) -> RuntimeClient:
    """The same runtime, run inside the network namespace at ``netns``."""
    return RuntimeClient(
        client.binary,
        root=client.root,
        global_args=client.global_args,
        prefix=("nsenter", f"--net={netns}", "--", *client.prefix),
        timeout=client.timeout,
        log=client.log,
    )


def _not_the_hosts(netns: str | Path) -> None:
    if os.stat(netns).st_ino == os.stat("/proc/self/ns/net").st_ino:
        raise AssertionError(f"{netns} is the host's network namespace: not touching it")


def ip(netns: str | Path, *args: str) -> str:
    """``ip ARGS`` inside the network namespace ``netns`` (never the host's)."""
    _not_the_hosts(netns)
    done = subprocess.run(
        ["nsenter", f"--net={netns}", "--", "ip", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"ip {' '.join(args)} in {netns}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class LinkView:
    name: str
    flags: frozenset[str]
    addresses: frozenset[str]


def links(netns: str | Path) -> dict[str, LinkView]:
    """The links of ``netns`` as its kernel lists them, with their flags and addresses."""
    flags = {}
    for line in ip(netns, "-o", "link", "show").splitlines():
        # "7: ctr0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ..." (a veth names its peer)
        _, name, rest = line.split(":", 2)
        flags[name.strip().split("@")[0]] = frozenset(
            rest.split("<", 1)[1].split(">")[0].split(",")
        )
    addresses: dict[str, set[str]] = {name: set() for name in flags}
    for line in ip(netns, "-o", "addr", "show").splitlines():
        # "7: ctr0    inet 10.99.0.1/24 scope global ctr0 ..."
        words = line.split()
        addresses.setdefault(words[1], set()).add(words[3])
    return {n: LinkView(n, flags[n], frozenset(addresses[n])) for n in flags}


@dataclass
class Sandbox:
    """The runtime's network namespace for one test, with a veth pair in it: ``device`` is
    the end to move, ``peer`` the end that stays."""

    path: Path
    device: str
    peer: str


@contextlib.contextmanager
def sandbox(containers: ContainerFactory, pairs: int = 1) -> Iterator[list[Sandbox]]:
    """A sandbox network namespace holding ``pairs`` veth pairs, the first end of each with a
    permanent global IPv4 and IPv6 address (the pair is left down: a fresh veth is)."""
    name = containers.new_id()
    containers.base_dir.mkdir(parents=True, exist_ok=True)
    with sandbox_netns(containers.base_dir / f"{name}-netns") as ns:
        made = []
        for i in range(pairs):
            # Names unique to the session (the token) and short enough for IFNAMSIZ.
            base = f"{token_of(name)[3:]}{i}"
            device, peer = f"{base}a", f"{base}b"
            ip(ns.path, "link", "add", "name", device, "type", "veth", "peer", "name", peer)
            ip(ns.path, "addr", "add", ADDRESS_V4, "dev", device)
            ip(ns.path, "-6", "addr", "add", ADDRESS_V6, "dev", device, "nodad")
            made.append(Sandbox(ns.path, device, peer))
        yield made


def net_devices_spec(containers: ContainerFactory, devices: dict[str, str | None]) -> Spec:
    spec = containers.spec(sh(stoppable(first="ip -o link show >/links; ")))
    spec.oci_version = NET_DEVICES_VERSION
    assert spec.linux is not None
    spec.linux.net_devices = {host: NetDevice(name=new) for host, new in devices.items()}
    return spec


@contextlib.contextmanager
def created(containers: ContainerFactory, client: RuntimeClient, spec: Spec) -> Iterator[Container]:
    """A container created by ``client`` (the runtime in the sandbox)."""
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, client)
        try:
            ctr.create()
            yield ctr
        finally:
            ctr.close_stdio()


def container_netns(ctr: Container) -> str:
    return f"/proc/{container_process(ctr).pid}/ns/net"


# --- moved in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    before: dict[str, LinkView]  # the sandbox's links before create
    sandbox_after: dict[str, LinkView]  # ... after it
    container: dict[str, LinkView]  # the container's, after create
    inside: str  # what the started program listed (ip -o link show)
    device: str


def move_one(containers: ContainerFactory, new_name: str) -> Moved:
    skip_unless_net_devices(containers.client)
    with sandbox(containers) as [sb]:
        client = in_netns(containers.client, sb.path)
        before = links(sb.path)
        with created(containers, client, net_devices_spec(containers, {sb.device: new_name})) as c:
            sandbox_after, container = links(sb.path), links(container_netns(c))
            c.start()
            wait_ready(c)
            inside = (c.bundle.upper / "links").read_text()
        return Moved(before, sandbox_after, container, inside, sb.device)


@pytest.mark.spec("config-linux.network-devices.1")
def test_a_net_device_is_moved_in_under_its_new_name(containers: ContainerFactory) -> None:
    seen = move_one(containers, "ctr0")
    # Control: the probe sees the device where it starts.
    assert seen.device in seen.before, f"the sandbox has no {seen.device}: {seen.before}"
    assert "ctr0" in seen.container, f"the container's links: {sorted(seen.container)}"
    assert seen.device not in seen.container, "the device kept its name in the container"
    assert seen.device not in seen.sandbox_after, "the device is still in the runtime's netns"
    assert ": ctr0" in seen.inside, f"the container's program lists {seen.inside!r}"


@pytest.mark.spec("config-linux.network-devices.5")
def test_a_moved_device_keeps_its_permanent_global_addresses(
    containers: ContainerFactory,
) -> None:
    seen = move_one(containers, "ctr0")
    assert {ADDRESS_V4, ADDRESS_V6} <= seen.before[seen.device].addresses  # the control
    assert "ctr0" in seen.container, f"the container's links: {sorted(seen.container)}"
    assert {ADDRESS_V4, ADDRESS_V6} <= seen.container["ctr0"].addresses, seen.container["ctr0"]


@pytest.mark.spec("config-linux.network-devices.6")
def test_a_moved_device_is_up(containers: ContainerFactory) -> None:
    seen = move_one(containers, "ctr0")
    assert "UP" not in seen.before[seen.device].flags, "the control: the device starts down"
    assert "ctr0" in seen.container, f"the container's links: {sorted(seen.container)}"
    assert "UP" in seen.container["ctr0"].flags, seen.container["ctr0"]


@pytest.mark.spec("config-linux.network-devices.4")
def test_a_template_name_gets_a_free_kernel_chosen_name(containers: ContainerFactory) -> None:
    skip_unless_net_devices(containers.client)
    with sandbox(containers, pairs=2) as pairs:
        client = in_netns(containers.client, pairs[0].path)
        spec = net_devices_spec(containers, {p.device: "eth%d" for p in pairs})
        with created(containers, client, spec) as ctr:
            container = links(container_netns(ctr))
        left = links(pairs[0].path)
    # A new network namespace has only lo: the kernel numbers from 0, one name each.
    assert sorted(n for n in container if n != "lo") == ["eth0", "eth1"], sorted(container)
    assert not {p.device for p in pairs} & set(left), f"the sandbox still has {sorted(left)}"


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.network-devices.2")
def test_a_device_the_runtime_namespace_lacks_makes_create_fail(
    containers: ContainerFactory,
) -> None:
    skip_unless_net_devices(containers.client)
    with sandbox(containers) as [sb]:
        client = in_netns(containers.client, sb.path)
        absent = f"{sb.device[:-1]}z"
        assert absent not in links(sb.path)
        with containers.bundle(net_devices_spec(containers, {absent: "ctr0"})) as (cid, bundle):
            ctr = Container(cid, bundle, client)
            try:
                since = boot_seconds()
                expect_refusal(ctr.create(check=False), f"create moving a missing {absent}")
                assert_nothing_created(
                    containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
                )
                # Control: the same bundle naming the device that exists is created.
                config = bundle.read_config()
                config["linux"]["netDevices"] = {sb.device: {"name": "ctr0"}}  # type: ignore[index]
                bundle.write_config(config)
                expect_success(ctr.create(check=False), f"create moving {sb.device}")
                assert "ctr0" in links(container_netns(ctr))
            finally:
                ctr.close_stdio()


@pytest.mark.spec("config-linux.network-devices.3", "runtime.errors.1")
def test_renaming_to_a_name_the_container_has_makes_create_fail(
    containers: ContainerFactory,
) -> None:
    skip_unless_net_devices(containers.client)
    with sandbox(containers) as [sb]:
        client = in_netns(containers.client, sb.path)
        before = links(sb.path)[sb.device]
        with containers.bundle(net_devices_spec(containers, {sb.device: "lo"})) as (cid, bundle):
            ctr = Container(cid, bundle, client)
            try:
                since = boot_seconds()
                expect_refusal(ctr.create(check=False), "create renaming a device to lo")
                assert_nothing_created(
                    containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
                )
                # As if never tried (runtime.md "Errors"): the device is where it was, as it was.
                after = links(sb.path)
                assert after.get(sb.device) == before, f"{sb.device} after the refusal: {after}"
                # Control: a name the container does not have goes through.
                config = bundle.read_config()
                config["linux"]["netDevices"] = {sb.device: {"name": "ctr0"}}  # type: ignore[index]
                bundle.write_config(config)
                expect_success(ctr.create(check=False), "create renaming the device to ctr0")
                assert "ctr0" in links(container_netns(ctr))
            finally:
                ctr.close_stdio()


# --- at delete -----------------------------------------------------------------------------


@pytest.mark.spec(
    "config-linux.namespace-lifecycle-and-container-termination.2", "runtime.delete.5"
)
def test_devices_stay_in_a_joined_namespace_after_delete(containers: ContainerFactory) -> None:
    skip_unless_net_devices(containers.client)
    with sandbox(containers) as [sb]:
        client = in_netns(containers.client, sb.path)
        joined = containers.base_dir / f"{containers.new_id()}-joined"
        with sandbox_netns(joined):
            spec = net_devices_spec(containers, {sb.device: "ctr0"})
            assert spec.linux is not None and spec.linux.namespaces is not None
            for ns in spec.linux.namespaces:
                if ns.type == "network":
                    ns.path = str(joined)
            with created(containers, client, spec) as ctr:
                # Control: the probe sees the device in the joined namespace while it runs.
                assert "ctr0" in links(joined), f"not moved into {joined}: {links(joined)}"
                ctr.start()
                wait_ready(ctr)
                ctr.kill("KILL")
                ctr.wait_for("stopped")
                expect_success(ctr.delete(check=False), "delete of the stopped container")
                left = links(joined)
                assert "ctr0" in left, f"delete took ctr0 out of the joined namespace: {left}"
                assert {ADDRESS_V4, ADDRESS_V6} <= left["ctr0"].addresses, left["ctr0"]
                back = links(sb.path)
                assert sb.device not in back and "ctr0" not in back, f"moved back: {back}"


@pytest.mark.spec("config-linux.namespace-lifecycle-and-container-termination.2")
def test_devices_of_a_new_namespace_are_not_moved_back_at_delete(
    containers: ContainerFactory,
) -> None:
    skip_unless_net_devices(containers.client)
    with sandbox(containers) as [sb]:
        client = in_netns(containers.client, sb.path)
        with created(containers, client, net_devices_spec(containers, {sb.device: "ctr0"})) as c:
            assert "ctr0" in links(container_netns(c))  # the control: it moved
            c.start()
            wait_ready(c)
            c.kill("KILL")
            c.wait_for("stopped")
            expect_success(c.delete(check=False), "delete of the stopped container")
            back = links(sb.path)
            assert sb.device not in back and "ctr0" not in back, f"moved back: {sorted(back)}"
            # The kernel destroyed the virtual device with the container's namespace, and its
            # peer with it (veth(4)): the namespace itself is gone, not kept somewhere.
            poll(
                lambda: True if sb.peer not in links(sb.path) else None,
                what=f"the peer {sb.peer} to go with the container's namespace",
            )
