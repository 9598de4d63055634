"""A container's place on a network: its namespace and, on the bridge, its veth pair.

The pair is made by a request to the engine's namespace: the host end ``veth<7 hex of the
container id>`` there (unique in that namespace, and telling collect() whose it is), the peer
created straight in the container's namespace (IFLA_NET_NS_FD in the peer's attributes) under a
temporary name and with the container's MAC. Inside the container's namespace the peer is then
renamed ``eth0``, gets the address, comes up, and gets a default route through the gateway. So
no ``eth0`` ever exists in the engine's namespace, and the peer is never moved: moving a link to
another namespace costs ~23 ms here (the kernel waits for an RCU grace period), creating it there
~3 ms.

The MAC is docker's scheme: 02:42 then the four bytes of the IPv4 address (02 = locally
administered, unicast), so an address handed out again keeps its MAC and neighbours' ARP
caches stay right.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("bridge", "none")
CONTAINER_IFNAME = "eth0"


@dataclass(frozen=True)
class Endpoint:
    container_id: str
    netns: Path
    mode: str
    ip: str | None = None
    prefixlen: int | None = None
    gateway: str | None = None
    mac: str | None = None
    host_veth: str | None = None


def host_veth_name(container_id: str) -> str:
    return "veth" + container_id[:7]


def temp_peer_name(container_id: str) -> str:
    # The peer's name from its creation in the container's namespace until it is renamed eth0.
    return "bhp" + container_id[:7]


def mac_for(ip: str) -> str:
    return "02:42:" + ":".join(f"{byte:02x}" for byte in ipaddress.IPv4Address(ip).packed)


def attach(engine: Any, container: Any, *, container_ns_fd: int, bridge_index: int,
           endpoint: Endpoint, broadcast: str) -> None:  # fmt: skip
    """Wires ``endpoint`` (bridge mode): ``engine`` and ``container`` are pyroute2 IPRoute
    objects in the engine's and the container's namespaces. On a failure after the pair exists,
    the host end is deleted (which takes the peer with it) before the error goes on."""
    assert endpoint.host_veth and endpoint.ip and endpoint.prefixlen and endpoint.gateway
    peer = temp_peer_name(endpoint.container_id)
    engine.link("add", ifname=endpoint.host_veth, kind="veth",
                peer={"ifname": peer, "address": endpoint.mac,
                      "net_ns_fd": container_ns_fd})  # fmt: skip
    host_index = engine.link_lookup(ifname=endpoint.host_veth)[0]
    try:
        engine.link("set", index=host_index, master=bridge_index, state="up")
        index = container.link_lookup(ifname=peer)[0]
        container.link("set", index=index, ifname=CONTAINER_IFNAME)  # still down: renamable
        container.addr("add", index=index, address=endpoint.ip, prefixlen=endpoint.prefixlen,
                       broadcast=broadcast)  # fmt: skip
        container.link("set", index=index, state="up")
        container.route("add", dst="0.0.0.0/0", gateway=endpoint.gateway, oif=index,
                        family=socket.AF_INET)  # fmt: skip
    except BaseException:
        with contextlib.suppress(Exception):
            engine.link("del", index=host_index)
        raise


def veths(engine: Any) -> list[str]:
    """Names of the veth links in the engine's namespace."""
    found = []
    for link in engine.link("dump"):
        info = link.get_attr("IFLA_LINKINFO")
        if info is not None and info.get_attr("IFLA_INFO_KIND") == "veth":
            found.append(str(link.get_attr("IFLA_IFNAME")))
    return found


def detach(engine: Any, host_veth: str) -> bool:
    """Deletes the host end (the kernel deletes its peer with it); False if it was gone."""
    found = engine.link_lookup(ifname=host_veth)
    if not found:
        return False
    engine.link("del", index=found[0])
    return True
