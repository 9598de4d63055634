"""The engine's bridge network, judged by netlink views of the namespaces it made (``ip``, run
read-only through nsenter) and by traffic on loopback: a published port (-p, -P) reaches busybox
httpd in the container through the proxy on the host's loopback; two containers on the bridge
talk; --network none leaves only lo, and the same fetch fails there; what inspect says of a
container's network is what its namespace holds; and none of it (bridge, veth, address, route)
is in the machine's own namespace.
"""

from __future__ import annotations

import os
import re

import pytest

from bulkhead import images
from conformance._engine import (
    BUSYBOX,
    HTTPD,
    Engine,
    addresses_in,
    free_port,
    host_network,
    http_get,
    in_netns,
    links_in,
    listening_on,
    parse_links,
    sh,
    wait_http,
)

pytest_plugins = ("conformance._engine_fixtures",)
pytestmark = pytest.mark.engine

BRIDGE = "bh0"
# A container's view of the network: its links, then an HTTP fetch from $1, tried $2 times
# (no wget -T: Debian's busybox 1.35 crashes on it).
PROBE = (
    "ip -o link; echo @@; i=0; while [ $i -lt $2 ]; do wget -q -O - http://$1/ && exit 0;"
    " i=$((i + 1)); sleep 0.1; done; exit 1"
)
# Address lifetimes count down between two reads of `ip addr` (ip-address(8)): not a change.
_LIFETIMES = re.compile(r"(valid|preferred)_lft \S+")


def host_view() -> tuple[frozenset[str], str, str]:
    names, addrs, routes = host_network()
    return names, _LIFETIMES.sub("", addrs), routes


def test_a_published_port_reaches_httpd_through_the_hosts_loopback(engine: Engine) -> None:
    before = host_view()
    port = free_port()
    fixed = engine.run_detached("-p", f"127.0.0.1:{port}:80", HTTPD)
    assert wait_http(port) == images.HTTPD_INDEX
    # The proxy listens on the host's loopback only (not 0.0.0.0), where the port was asked for.
    assert listening_on(port), f"nothing listens on 127.0.0.1:{port} in the host's namespace"
    bound = engine.inspect(fixed).get("NetworkSettings", "Ports", "80/tcp")
    assert bound == [{"HostIp": "127.0.0.1", "HostPort": str(port)}], bound
    # -P: every port the image exposes, on a port the kernel picked.
    any_port = engine.inspect(engine.run_detached("-P", HTTPD))
    chosen = any_port.host_port("80/tcp")
    assert chosen != port
    assert any_port.get("NetworkSettings", "Ports", "80/tcp")[0]["HostIp"] == "127.0.0.1"
    assert wait_http(chosen) == images.HTTPD_INDEX
    # None of it in the machine's own network namespace; the control: the engine's holds both
    # containers' veths on its bridge, so a listing would have shown them.
    assert host_view() == before, "the machine's network namespace changed"
    on_bridge = [link for link in engine.engine_links() if link.master == BRIDGE]
    assert len(on_bridge) == 2, f"the engine's bridge ports: {on_bridge}"
    assert not {link.name for link in on_bridge} & before[0]
    # rm takes the proxy with it: the port no longer answers, nothing listens.
    engine("rm", "-f", fixed)
    assert not listening_on(port), f"127.0.0.1:{port} still listens after rm"
    assert http_get(port, timeout=0.5) is None
    assert wait_http(chosen) == images.HTTPD_INDEX  # the other container's port is untouched


def test_bridge_containers_talk_as_inspect_says_and_none_has_only_lo(engine: Engine) -> None:
    before = host_view()
    server = engine.inspect(engine.run_detached(HTTPD))
    netns = server.sandbox_key
    assert netns == engine.netns(server.id), f"SandboxKey {netns}"
    # The namespace file is the container's network namespace, not the machine's.
    assert os.stat(netns).st_ino == os.stat(f"/proc/{server.pid}/ns/net").st_ino
    assert os.readlink(f"/proc/{server.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    settings = server.get("NetworkSettings")
    ip, prefix, gateway = settings["IPAddress"], settings["IPPrefixLen"], settings["Gateway"]
    assert settings["Networks"]["bridge"]["IPAddress"] == ip
    addrs = addresses_in(netns)
    ipv4 = {name: [a for a in found if a.startswith("inet ")] for name, found in addrs.items()}
    assert ipv4.get("eth0") == [f"inet {ip}/{prefix}"], f"addresses in {netns}: {addrs}"
    assert ipv4.get("lo") == ["inet 127.0.0.1/8"]
    links = {link.name: link for link in links_in(netns)}
    assert set(links) == {"lo", "eth0"}, f"links in {netns}: {sorted(links)}"
    eth0 = links["eth0"]
    assert eth0.mac == settings["MacAddress"], f"eth0 {eth0.mac}, inspect {settings['MacAddress']}"
    routes = in_netns(netns, "ip", "route", "show")
    assert f"default via {gateway} dev eth0" in routes, routes
    # Its peer is a veth of the engine's namespace on the bridge, whose address is the gateway.
    peers = [link for link in engine.engine_links() if link.index == eth0.peer]
    assert len(peers) == 1 and peers[0].peer == eth0.index and peers[0].master == BRIDGE, peers
    assert f"inet {gateway}/{prefix}" in addresses_in(engine.engine_netns).get(BRIDGE, [])

    # A second container reaches the first over the bridge (httpd may still be starting); the
    # same probe under --network none sees only lo, up, and cannot reach it.
    client = engine("run", "--rm", BUSYBOX, *sh(PROBE, ip, "100"))
    links_seen, _, body = client.stdout.partition("@@\n")
    assert body.encode() == images.HTTPD_INDEX, client.stdout
    assert sorted(link.name for link in parse_links(links_seen)) == ["eth0", "lo"], links_seen
    alone = engine("run", "--rm", "--network", "none", BUSYBOX, *sh(PROBE, ip, "1"), check=False)
    links_seen, _, body = alone.stdout.partition("@@\n")
    assert [link.name for link in parse_links(links_seen)] == ["lo"], alone.stdout
    assert "<LOOPBACK,UP" in links_seen, f"lo is not up under --network none: {links_seen}"
    assert alone.returncode == 1 and not body, f"--network none reached {ip}: {alone.stdout!r}"
    # Nothing of it in the machine's namespace (the control: the engine's shows the veth).
    assert host_view() == before, "the machine's network namespace changed"
    assert peers[0].name not in before[0]
