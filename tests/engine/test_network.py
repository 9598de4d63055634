"""The engine's networks against the real kernel: namespaces, bridge, veths, collect, teardown.

Every test runs under ``host_untouched``: the machine's own links, addresses, routes, rules,
nft ruleset and ip_forward, read with ``ip``/``nft`` (read-only), are the same after the test as
before it. The same probe run inside the engine's namespace sees the bridge and the veths
(``test_bridge_endpoint_is_what_the_kernel_shows``): it would see them on the host too.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.network import Network, netns
from reference_runtime.engine.network.endpoint import Endpoint
from reference_runtime.linux.namespaces import socket_namespace

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces, bridges and veths need root"
)

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


# --- probes (read-only) ---------------------------------------------------------------------


def _run(args: list[str], ns: Path | None = None) -> str:
    prefix = ["nsenter", f"--net={ns}"] if ns is not None else []
    done = subprocess.run(prefix + args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def net_view(ns: Path | None = None) -> str:
    """What `ip` shows of a network namespace (the caller's own if ``ns`` is None)."""
    out = [_run(["ip", "-o", cmd], ns) for cmd in ("link", "addr")]
    out += [
        _run(["ip", *family, what], ns) for family in ([], ["-6"]) for what in ("route", "rule")
    ]
    # Address lifetimes count down on dynamic addresses; they are not a change we made.
    return re.sub(r"(valid|preferred)_lft \S+", "", "".join(out))


def host_view() -> str:
    view = net_view()
    if shutil.which("nft"):
        view += _run(["nft", "list", "ruleset"])
    return view + Path("/proc/sys/net/ipv4/ip_forward").read_text()


def nsfs_mounts_under(path: Path) -> list[str]:
    """Mount points of nsfs files below ``path`` in our mount namespace (mountinfo field 5)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype == "nsfs" and fields[4].startswith(str(path)):
            found.append(fields[4])
    return found


def links(ns: Path) -> dict[str, str]:
    """{name: the rest of its `ip -o link` line} in ``ns``."""
    found = {}
    for line in _run(["ip", "-o", "link"], ns).splitlines():
        name = line.split(": ")[1].split("@")[0]
        found[name] = line
    return found


def new_id() -> str:
    return secrets.token_hex(32)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    before = host_view()
    yield
    assert host_view() == before, "the machine's own network namespace changed"


@pytest.fixture(autouse=True)
def no_namespace_left(tmp_path: Path) -> Iterator[None]:
    """Torn down after every other fixture: a namespace still mounted under the test's
    directory is a leak. It is unmounted anyway (an engine namespace nothing else holds goes
    with its bridge and veths), so a failing test does not leave it on the machine."""
    yield
    leaked = nsfs_mounts_under(tmp_path)
    for mount in leaked:
        netns.remove(Path(mount))
    assert leaked == []


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    found = Layout(tmp_path / "root", tmp_path / "exec")
    found.ensure()
    return found


@pytest.fixture
def network(layout: Layout) -> Iterator[Network]:
    net = Network(layout)
    yield net
    # Whatever a test left: collect with nothing live, then the bridge and netns/engine.
    with layout.locked():
        Network(layout).collect(set())
        Network(layout).teardown()
    assert nsfs_mounts_under(layout.exec_root) == []
    assert sorted(os.listdir(layout.netns_dir)) == []


# --- netns.py ---------------------------------------------------------------------------------


def test_netns_create_holds_a_new_namespace_with_lo_up(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    netns.create(path)
    try:
        assert netns.is_netns(path)
        assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert nsfs_mounts_under(tmp_path) == [str(path)]
        view = links(path)
        assert list(view) == ["lo"]
        assert ",UP," in view["lo"] or "<LOOPBACK,UP" in view["lo"]
    finally:
        assert netns.remove(path) is True
    assert not path.exists()
    assert nsfs_mounts_under(tmp_path) == []
    assert netns.remove(path) is False  # idempotent


def test_netns_create_never_mounts_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("someone's")
    with pytest.raises(EngineError) as caught:
        netns.create(path)
    assert str(caught.value) == f"failed to create network namespace {path}: file exists"
    assert path.read_text() == "someone's"
    assert nsfs_mounts_under(tmp_path) == []


def test_netlink_sockets_refuse_the_machines_own_namespace(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    netns.create(path)
    try:
        # Control: a namespace the engine made gives a socket, and it is that namespace's.
        with netns.socket_in(path, socket.AF_INET, socket.SOCK_DGRAM) as sock:
            assert socket_namespace(sock.fileno())[1] == os.stat(path).st_ino
        with pytest.raises(EngineError) as caught:
            netns.socket_in(Path("/proc/self/ns/net"), socket.AF_INET, socket.SOCK_DGRAM)
        assert str(caught.value) == (
            "failed to enter network namespace /proc/self/ns/net: it is the machine's own "
            "network namespace"
        )
        with pytest.raises(EngineError, match="no such network namespace"):
            netns.socket_in(tmp_path / "missing", socket.AF_INET, socket.SOCK_DGRAM)
        # The calling thread never moved.
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    finally:
        netns.remove(path)


# --- connect / disconnect ---------------------------------------------------------------------


def test_none_mode_gives_only_lo_and_no_bridge(network: Network) -> None:
    container_id = new_id()
    found = network.connect(container_id, "none")
    assert found == Endpoint(container_id, network.netns_path(container_id), "none")
    assert network.endpoint(container_id) == found
    view = links(found.netns)
    assert list(view) == ["lo"] and "UP" in view["lo"]
    assert _run(["ip", "-4", "route"], found.netns) == ""
    # Control for "no bridge": the engine's namespace is made only for the bridge mode.
    assert not os.path.lexists(network.engine_netns)
    network.disconnect(container_id)
    assert network.endpoint(container_id) is None
    assert not found.netns.exists()


def test_bridge_endpoint_is_what_the_kernel_shows(network: Network) -> None:
    container_id = new_id()
    found = network.connect(container_id, "bridge")
    assert found.ip == "172.30.0.2" and found.prefixlen == 16 and found.gateway == "172.30.0.1"
    assert found.mac == "02:42:ac:1e:00:02"
    assert found.host_veth == "veth" + container_id[:7]
    assert network.endpoint(container_id) == found

    engine = links(network.engine_netns)
    assert set(engine) == {"lo", "bh0", found.host_veth}  # no eth0, no temporary peer left
    assert "master bh0" in engine[found.host_veth] and "state UP" in engine[found.host_veth]
    engine_addrs = _run(["ip", "-o", "-4", "addr", "show", "dev", "bh0"], network.engine_netns)
    assert "inet 172.30.0.1/16 brd 172.30.255.255" in engine_addrs

    inner = links(found.netns)
    assert set(inner) == {"lo", "eth0"}
    assert f"link/ether {found.mac}" in inner["eth0"] and "UP" in inner["eth0"]
    addrs = _run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], found.netns)
    assert "inet 172.30.0.2/16 brd 172.30.255.255" in addrs
    routes = _run(["ip", "-4", "route"], found.netns)
    assert re.search(r"^default via 172\.30\.0\.1 dev eth0\b", routes, re.M), routes

    # The probe of host_untouched sees all of this when pointed at the engine's namespace.
    view = net_view(network.engine_netns)
    assert "bh0" in view and found.host_veth in view and "172.30.0.1/16" in view


def _ping(source: Path, ip: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={source}", BUSYBOX, "ping", "-c", "1", "-W", "2", ip],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


TCP_SERVER = r"""
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 9000))
s.listen()
print("ready", flush=True)
c, peer = s.accept()
c.sendall(("from " + peer[0] + ": " + c.recv(100).decode()).encode())
c.close()
"""


def test_two_containers_on_the_bridge_reach_each_other(network: Network) -> None:
    first = network.connect(new_id(), "bridge")
    second = network.connect(new_id(), "bridge")
    assert (first.ip, second.ip) == ("172.30.0.2", "172.30.0.3")
    assert _ping(first.netns, "172.30.0.3").returncode == 0
    assert _ping(second.netns, "172.30.0.2").returncode == 0
    assert _ping(first.netns, "172.30.0.1").returncode == 0  # the gateway, in netns/engine

    server = subprocess.Popen(
        ["nsenter", f"--net={second.netns}", sys.executable, "-c", TCP_SERVER],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        client = subprocess.run(
            ["nsenter", f"--net={first.netns}", sys.executable, "-c",
             "import socket; c = socket.create_connection(('172.30.0.3', 9000), timeout=5); "
             "c.sendall(b'hi'); print(c.recv(100).decode())"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        # The server saw the first container's own address: the bridge, no proxy, no NAT.
        assert client.stdout.strip() == "from 172.30.0.2: hi", client.stderr
    finally:
        server.kill()
        server.wait()

    # Control for the pings: an address nobody has does not answer.
    assert _ping(first.netns, "172.30.0.99").returncode != 0


def test_disconnect_removes_veth_address_and_namespace_and_is_idempotent(
    network: Network, layout: Layout
) -> None:
    container_id = new_id()
    found = network.connect(container_id, "bridge")
    assert found.host_veth in links(network.engine_netns)  # control
    # A process in the namespace holds it, as a running container's does (`rm -f`): the veth
    # must go with disconnect(), not only once the namespace itself is destroyed.
    holder = subprocess.Popen(["nsenter", f"--net={found.netns}", BUSYBOX, "sleep", "60"])
    try:
        network.disconnect(container_id)
        assert set(links(network.engine_netns)) == {"lo", "bh0"}
        assert list(links(Path(f"/proc/{holder.pid}/ns/net"))) == ["lo"]
    finally:
        holder.kill()
        holder.wait()
    assert not found.netns.exists()
    assert nsfs_mounts_under(layout.netns_dir) == [str(network.engine_netns)]
    assert network.ipam.allocations() == {}
    assert network.endpoint(container_id) is None
    network.disconnect(container_id)  # again: nothing to do, no error
    # The address is free again.
    assert network.connect(new_id(), "bridge").ip == found.ip


def test_connect_refuses_bad_input_before_touching_anything(network: Network) -> None:
    for container_id, mode, why in [
        ("UPPER" + "a" * 10, "bridge", "a container id is 7 to 64 lower-case hex digits"),
        ("../../x", "none", "a container id is 7 to 64 lower-case hex digits"),
        ("abc", "none", "a container id is 7 to 64 lower-case hex digits"),
        ("a" * 64, "host", "unknown network mode 'host' (none, bridge)"),
    ]:
        with pytest.raises(EngineError) as caught:
            network.connect(container_id, mode)
        assert why in str(caught.value)
    assert os.listdir(network.layout.netns_dir) == []
    assert network.ipam.allocations() == {}
    with pytest.raises(EngineError, match="a bridge name is 1 to 15"):
        Network(network.layout, bridge="veth0")
    with pytest.raises(EngineError, match=r"failed to configure network subnet 10\.0\.0\.1/8"):
        Network(network.layout, subnet="10.0.0.1/8")


def test_a_failed_connect_leaves_nothing_and_spares_the_other_container(network: Network) -> None:
    first_id = "abcdef0" + secrets.token_hex(28) + "1"
    first = network.connect(first_id, "bridge")  # control: the same call succeeds
    twin_id = "abcdef0" + secrets.token_hex(28) + "2"  # same 7 first digits: same veth name
    with pytest.raises(EngineError) as caught:
        network.connect(twin_id, "bridge")
    assert str(caught.value) == (
        f"failed to connect container {twin_id[:12]} to network bh0: vethabcdef0 is taken "
        "(another container's id starts with the same 7 digits)"
    )
    assert not os.path.lexists(network.netns_path(twin_id))
    assert network.ipam.allocations() == {first_id: first.ip}
    # The first container's veth is intact and still carries its traffic.
    assert set(links(network.engine_netns)) == {"lo", "bh0", "vethabcdef0"}
    assert _ping(first.netns, "172.30.0.1").returncode == 0
    # Connecting an id that is already connected is refused too.
    with pytest.raises(EngineError, match="already exists"):
        network.connect(first_id, "none")
    assert network.endpoint(first_id) == first


def test_the_subnet_is_configurable_and_not_changed_under_a_running_container(
    layout: Layout, network: Network
) -> None:
    custom = Network(layout, subnet="10.77.0.0/24")
    container_id = new_id()
    found = custom.connect(container_id, "bridge")
    assert (found.ip, found.gateway, found.prefixlen) == ("10.77.0.2", "10.77.0.1", 24)
    assert found.mac == "02:42:0a:4d:00:02"
    with pytest.raises(EngineError, match="in use by 1 container"):
        network.connect(new_id(), "bridge")  # the default subnet, while 10.77.0.0/24 is used
    custom.disconnect(container_id)
    # Nothing attached: the default subnet replaces it, on file and on the bridge.
    again = network.connect(new_id(), "bridge")
    assert again.ip == "172.30.0.2"
    bh0 = _run(["ip", "-o", "-4", "addr", "show", "dev", "bh0"], network.engine_netns)
    assert "172.30.0.1/16" in bh0 and "10.77.0.1" not in bh0


def test_collect_removes_what_a_crashed_engine_left(layout: Layout, network: Network) -> None:
    keep, gone, gone_none = new_id(), new_id(), new_id()
    kept = network.connect(keep, "bridge")
    network.connect(gone, "bridge")
    network.connect(gone_none, "none")
    # Leftovers of a crash at other points: a netns file never mounted, a veth pair whose
    # container never got its end, and an address with nothing else.
    unmounted = "d" * 64
    (layout.netns_dir / unmounted).touch()
    with netns.rtnl(network.engine_netns) as engine:
        engine.link("add", ifname="vethdeadbee", kind="veth", peer="bhpdeadbee")
    orphan_address = network.ipam.allocate("e" * 64)
    assert {"vethdeadbee", "bhpdeadbee"} <= set(links(network.engine_netns))  # control

    removed = Network(layout).collect({keep})  # the next engine start knows only `keep`

    assert sorted(removed) == sorted([
        f"netns {gone}", f"netns {gone_none}", f"netns {unmounted}",
        f"veth veth{gone[:7]}", "veth vethdeadbee",
        f"address 172.30.0.3 of {gone}", f"address {orphan_address} of {'e' * 64}",
    ])  # fmt: skip
    assert sorted(os.listdir(layout.netns_dir)) == sorted(["engine", keep])
    assert set(links(network.engine_netns)) == {"lo", "bh0", kept.host_veth}
    assert network.ipam.allocations() == {keep: kept.ip}
    assert _ping(kept.netns, "172.30.0.1").returncode == 0  # the live one still works
    assert Network(layout).collect({keep}) == []  # nothing more to collect


def test_collect_replaces_an_engine_namespace_file_left_unmounted(network: Network) -> None:
    net = Network(network.layout)
    net.engine_netns.touch()  # a crash between the file and its mount
    assert net.collect(set()) == ["netns engine (not a namespace)"]
    found = net.connect(new_id(), "bridge")  # and the next connect makes a real one
    assert netns.is_netns(net.engine_netns)
    net.disconnect(found.container_id)
    net.teardown()


def test_teardown_refuses_while_attached_then_removes_bridge_and_engine_namespace(
    layout: Layout, network: Network
) -> None:
    container_id = new_id()
    network.connect(container_id, "bridge")
    with pytest.raises(EngineError) as caught:
        network.teardown()
    assert str(caught.value) == (
        f"failed to remove network bh0: 1 container(s) still attached ({container_id[:12]})"
    )
    assert "bh0" in links(network.engine_netns)  # control: refused, so still there
    network.disconnect(container_id)
    network.teardown()
    assert not os.path.lexists(network.engine_netns)
    assert not (layout.network / "bridge.json").exists()
    assert nsfs_mounts_under(layout.exec_root) == []
    network.teardown()  # idempotent


def test_connect_and_disconnect_cost(network: Network) -> None:
    """connect()+disconnect() of a bridge endpoint, the engine's namespace and bridge already
    there and pyroute2 already imported (what `run` pays per container)."""
    network.disconnect(network.connect(new_id(), "bridge").container_id)  # warm: imports, bridge
    costs = []
    for _ in range(5):
        start = time.perf_counter()
        network.disconnect(network.connect(new_id(), "bridge").container_id)
        costs.append(time.perf_counter() - start)
    median = sorted(costs)[2]
    print(f"connect+disconnect (bridge): median {median * 1000:.1f} ms of {len(costs)}")
    assert median < 0.5  # the aim is < 150 ms; a loaded shared machine gets headroom
