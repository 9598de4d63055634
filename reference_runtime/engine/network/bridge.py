"""The bridge, in the engine's own network namespace (never the machine's).

One Linux bridge (``bh0``) carries the subnet's gateway address; each container's veth has its
host end enslaved to it. With one bridge and no route out of the engine's namespace, nothing
needs ip_forward or NAT: containers reach each other through the bridge, and the port proxy
reaches them from the engine's namespace through the gateway address. STP is off (the kernel's
default for a new bridge), so a port forwards as soon as it is up (no forward delay).
"""

from __future__ import annotations

import socket
from typing import Any


def find(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def ensure(ipr: Any, name: str, gateway: str, prefixlen: int, broadcast: str) -> int:
    """The bridge's index, after making sure it exists, is up and carries exactly the gateway
    address (a subnet changed while nothing was attached replaces the old address)."""
    index = find(ipr, name)
    if index is None:
        ipr.link("add", ifname=name, kind="bridge")
        index = find(ipr, name)
        if index is None:  # pragma: no cover - the kernel acked the add
            raise OSError(f"bridge {name} vanished after its creation")
    have = False
    for addr in ipr.addr("dump"):
        if addr["index"] != index or addr["family"] != socket.AF_INET:
            continue
        if addr.get_attr("IFA_LOCAL") == gateway and addr["prefixlen"] == prefixlen:
            have = True
        else:
            ipr.addr("del", index=index, address=addr.get_attr("IFA_LOCAL"),
                     prefixlen=addr["prefixlen"])  # fmt: skip
    if not have:
        ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen, broadcast=broadcast)
    ipr.link("set", index=index, state="up")
    return index


def remove(ipr: Any, name: str) -> bool:
    """Deletes the bridge; False if there was none."""
    index = find(ipr, name)
    if index is None:
        return False
    ipr.link("del", index=index)
    return True
