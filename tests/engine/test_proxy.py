"""PortProxy against the real kernel: a host loopback port reaches a server in a container's
network namespace through the engine's, and nothing but loopback listeners touches the host."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.network import Endpoint, Network, netns
from reference_runtime.engine.network.ports import PortBinding, parse_publish
from reference_runtime.engine.network.proxy import PortProxy

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces, bridges and veths need root"
)

# A TCP echo server that prefixes what it sends back with the peer address it saw, and a UDP
# one; started inside the container's namespace by nsenter, so it is that namespace's process.
ECHO_SERVER = r"""
import socket, sys, threading
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 7000))
tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 7001))
def udp_echo():
    while True:
        data, peer = udp.recvfrom(65536)
        udp.sendto(peer[0].encode() + b" " + data, peer)
def serve(conn, peer):
    conn.sendall(peer[0].encode() + b" ")
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.close()
threading.Thread(target=udp_echo, daemon=True).start()
print("ready", flush=True)
while True:
    threading.Thread(target=serve, args=tcp.accept(), daemon=True).start()
"""


def host_view() -> str:
    out = []
    for args in (
        ["ip", "-o", "link"],
        ["ip", "-o", "addr"],
        ["ip", "route"],
        ["ip", "-6", "route"],
    ):
        out.append(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return "".join(out).replace("valid_lft forever preferred_lft forever", "")


def listening_on_host(port: int) -> list[str]:
    """Local addresses of the host's TCP sockets in LISTEN on ``port`` (/proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    before = host_view()
    yield
    assert host_view() == before, "the machine's own network namespace changed"


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    layout = Layout(tmp_path / "root", tmp_path / "exec")
    layout.ensure()
    net = Network(layout)
    try:
        yield net
        with layout.locked():
            Network(layout).collect(set())
            Network(layout).teardown()
    finally:
        # Whatever a failure left is unmounted anyway (an engine namespace nothing else holds
        # goes with its bridge and veths); then a leak fails the test.
        leaked = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if " nsfs " in line and line.split()[4].startswith(str(tmp_path))]  # fmt: skip
        for mount in leaked:
            netns.remove(Path(mount))
    assert leaked == []


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., PortProxy]]:
    """PortProxy(...) for a test, stopped at the end even if the test failed half-way. Ask for
    it after ``container``: it is torn down first, while the server still runs."""
    made: list[PortProxy] = []

    def make(bindings: list[PortBinding], target_ip: str, ns: Path) -> PortProxy:
        made.append(PortProxy(bindings, target_ip, ns))
        return made[-1]

    yield make
    for proxy in made:
        stop_within(proxy, 10)


def stop_within(proxy: PortProxy, seconds: float) -> None:
    stopper = threading.Thread(target=proxy.stop, daemon=True)
    stopper.start()
    stopper.join(seconds)
    assert not stopper.is_alive(), f"stop() did not return within {seconds} s"


@pytest.fixture
def container(network: Network) -> Iterator[Endpoint]:
    found = network.connect(os.urandom(32).hex(), "bridge")
    server = subprocess.Popen(
        ["nsenter", f"--net={found.netns}", sys.executable, "-c", ECHO_SERVER],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield found
    finally:
        server.kill()
        server.wait()


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)  # the half-close must reach the server (it ends its loop)
        got = b""
        while data := conn.recv(65536):
            got += data
    return got


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bulkhead-proxy")]


def test_a_published_tcp_port_reaches_the_container_through_the_engine_namespace(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    proxy = make_proxy([parse_publish("0:7000")], container.ip, network.engine_netns)
    [bound] = proxy.bind()
    assert bound.host_port != 0 and listening_on_host(bound.host_port) == ["0100007F"]
    proxy.start()
    payload = os.urandom(1 << 20)  # 1 MiB: many reads and writes each way
    # The server saw the gateway as its peer: the connection came from the engine's namespace
    # over the bridge, not from the host (which has no route to 172.30.0.0/16).
    assert _exchange(bound.host_port, payload) == b"172.30.0.1 " + payload
    # The proxy thread is in the engine's namespace; this (main) thread is not.
    [thread] = [t for t in _proxy_threads() if t.name == "bulkhead-proxy"]
    theirs = os.stat(f"/proc/self/task/{thread.native_id}/ns/net").st_ino
    assert theirs == os.stat(network.engine_netns).st_ino
    assert os.stat("/proc/thread-self/ns/net").st_ino != theirs
    stop_within(proxy, 10)
    assert _proxy_threads() == []
    assert listening_on_host(bound.host_port) == []


def test_a_published_udp_port_reaches_the_container(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    proxy = make_proxy([parse_publish("0:7001/udp")], container.ip, network.engine_netns)
    [bound] = proxy.bind()
    proxy.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        for text in (b"one", b"two"):  # the second datagram reuses the flow
            client.sendto(text, ("127.0.0.1", bound.host_port))
            data, source = client.recvfrom(100)
            assert data == b"172.30.0.1 " + text
            assert source == ("127.0.0.1", bound.host_port)


def test_a_port_in_use_is_refused_and_leaves_nothing_bound(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = make_proxy([PortBinding("127.0.0.1", 0, 7000, "tcp")], container.ip,
                          network.engine_netns)  # fmt: skip
        [first] = free.bind()  # control: the same call on a free port succeeds
        free.stop()
        proxy = make_proxy([first, PortBinding("127.0.0.1", busy, 80, "tcp")], container.ip,
                           network.engine_netns)  # fmt: skip
        with pytest.raises(EngineError) as caught:
            proxy.bind()
        assert (
            str(caught.value) == f"failed to publish port 127.0.0.1:{busy}: address already in use"
        )
        # The binding bound before the failure was closed again.
        assert listening_on_host(first.host_port) == []
        assert proxy.fds() == []


def test_non_loopback_host_addresses_are_refused(network: Network) -> None:
    with pytest.raises(EngineError) as caught:
        PortProxy([PortBinding("0.0.0.0", 8080, 80, "tcp")], "172.30.0.2", network.engine_netns)
    assert str(caught.value) == "failed to publish port 0.0.0.0:8080: not a loopback address"
    # Control: the same on the loopback is accepted.
    PortProxy([PortBinding("127.0.0.1", 8080, 80, "tcp")], "172.30.0.2", network.engine_netns)


def test_stop_closes_live_connections_and_the_listener(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    proxy = make_proxy([parse_publish("0:7000")], container.ip, network.engine_netns)
    [bound] = proxy.bind()
    proxy.start()
    with socket.create_connection(("127.0.0.1", bound.host_port), timeout=10) as conn:
        conn.sendall(b"x")
        assert conn.recv(100).startswith(b"172.30.0.1 ")  # control: the connection is live
        stop_within(proxy, 10)
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            # Closed: the end of the stream, after at most the rest of the echo.
            assert conn.recv(100) in (b"", b"x")
            assert conn.recv(100) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", bound.host_port), timeout=10)
    assert _proxy_threads() == []


def test_nothing_listening_in_the_container_closes_the_client_and_the_proxy_goes_on(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    proxy = make_proxy([parse_publish("0:7999"), parse_publish("0:7000")], container.ip,
                       network.engine_netns)  # fmt: skip
    dead, alive = proxy.bind()
    proxy.start()
    with socket.create_connection(("127.0.0.1", dead.host_port), timeout=10) as conn:
        conn.settimeout(10)
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            assert conn.recv(100) == b""
    assert _exchange(alive.host_port, b"still") == b"172.30.0.1 still"


def test_start_in_a_missing_namespace_fails_and_leaves_no_thread(
    tmp_path: Path, make_proxy: Callable[..., PortProxy]
) -> None:
    missing = tmp_path / "no-such-netns"
    proxy = make_proxy([parse_publish("0:80")], "172.30.0.2", missing)
    with pytest.raises(EngineError) as caught:
        proxy.start()
    assert str(caught.value) == (
        f"failed to enter network namespace {missing}: no such network namespace"
    )
    assert _proxy_threads() == []


MONITOR = r"""
import json, sys
from pathlib import Path
from reference_runtime.engine.network.ports import PortBinding
from reference_runtime.engine.network.proxy import PortProxy
spec = json.loads(sys.argv[1])
proxy = PortProxy.adopt([PortBinding(**b) for b in spec["bindings"]], spec["fds"],
                        spec["ip"], Path(spec["netns"]))
proxy.start()
print("started", flush=True)
sys.stdin.read()
proxy.stop()
"""


def test_a_monitor_process_adopts_the_listening_sockets_bound_by_the_cli(
    network: Network, container: Endpoint, make_proxy: Callable[..., PortProxy]
) -> None:
    proxy = make_proxy([parse_publish("0:7000")], container.ip, network.engine_netns)
    bindings = proxy.bind()
    spec = {"bindings": [vars(b) for b in bindings], "fds": proxy.fds(), "ip": container.ip,
            "netns": str(network.engine_netns)}  # fmt: skip
    monitor = subprocess.Popen([sys.executable, "-c", MONITOR, json.dumps(spec)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               pass_fds=proxy.fds())  # fmt: skip
    proxy.stop()  # the CLI's copies; the port stays bound by the monitor's
    try:
        assert monitor.stdout is not None and monitor.stdout.readline() == "started\n"
        assert _exchange(bindings[0].host_port, b"adopted") == b"172.30.0.1 adopted"
    finally:
        assert monitor.stdin is not None
        monitor.stdin.close()
        assert monitor.wait(timeout=30) == 0
    assert listening_on_host(bindings[0].host_port) == []
