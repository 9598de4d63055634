"""Addresses for the bridge network, kept in ``<root>/network/bridge.json``.

The file holds the subnet, the gateway (the subnet's first host, the bridge's own address), the
bridge's name and ``allocations`` {container id: address}. It is read and rewritten (tmp +
rename, so a crash leaves the old or the new file, never half of one) by each call, always under
the engine's lock (``Layout.locked()``), which the caller holds: one mutating command at a time.

An allocation is the lowest free host address. The network address, the gateway and the
broadcast address are never handed out (RFC 919 / RFC 922: all-zeros and all-ones host parts).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from reference_runtime.engine.errors import EngineError

DEFAULT_SUBNET = "172.30.0.0/16"
DEFAULT_BRIDGE = "bh0"


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    """The subnet as a network, or an EngineError saying why it cannot be one."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise EngineError(f"failed to configure network subnet {subnet}: {exc}") from None
    if net.prefixlen > 30:
        # A /31 or /32 has no room for a gateway and one container besides the two reserved.
        raise EngineError(
            f"failed to configure network subnet {subnet}: a /{net.prefixlen} leaves no address "
            "for a container (at most /30)"
        )
    if (
        net.is_loopback
        or net.is_multicast
        or net.is_link_local
        or net.is_unspecified
        or (net.is_reserved)
    ):
        raise EngineError(
            f"failed to configure network subnet {subnet}: not a unicast range a bridge can use"
        )
    return net


class Ipam:
    """The allocations of one bridge network, file-backed (see the module's docstring)."""

    def __init__(self, path: Path, subnet: str = DEFAULT_SUBNET,
                 bridge: str = DEFAULT_BRIDGE) -> None:  # fmt: skip
        self.path = path
        self.network = parse_subnet(subnet)
        self.bridge = bridge

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    # --- the file ----------------------------------------------------------------------------

    def _load(self) -> tuple[ipaddress.IPv4Network, dict[str, str]]:
        """The subnet on file (this instance's if there is no file) and its allocations."""
        try:
            data: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return self.network, {}
        except (OSError, ValueError) as exc:
            raise EngineError(f"failed to read network state {self.path}: {exc}") from None
        try:
            network = ipaddress.IPv4Network(data["subnet"])
            allocations = {str(k): str(v) for k, v in data["allocations"].items()}
        except (TypeError, KeyError, AttributeError, ValueError):
            raise EngineError(
                f"failed to read network state {self.path}: not an IPAM record"
            ) from None
        return network, allocations

    def _write(self, network: ipaddress.IPv4Network, allocations: dict[str, str]) -> None:
        record = {
            "bridge": self.bridge,
            "subnet": str(network),
            "gateway": str(network.network_address + 1),
            "allocations": dict(sorted(allocations.items())),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w") as out:
                json.dump(record, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EngineError(f"failed to write network state {self.path}: {exc}") from None

    # --- allocations -------------------------------------------------------------------------

    def subnet_in_use(self) -> ipaddress.IPv4Network:
        """The subnet the allocated addresses are from: the file's while it has allocations
        (an engine started with another ``--subnet`` still sees and frees them), else ours."""
        network, allocations = self._load()
        return network if allocations else self.network

    def allocations(self) -> dict[str, str]:
        return self._load()[1]

    def get(self, container_id: str) -> str | None:
        return self._load()[1].get(container_id)

    def allocate(self, container_id: str) -> str:
        """The container's address: the one it has, or the lowest free host address. Refused
        while the file's subnet is another one with addresses still in use; replaced when none
        are."""
        network, allocations = self._load()
        if network != self.network and allocations:
            raise EngineError(
                f"failed to configure network subnet {self.network}: the bridge network has "
                f"subnet {network}, in use by {len(allocations)} container(s)"
            )
        if container_id in allocations:
            return allocations[container_id]
        taken = {ipaddress.IPv4Address(ip) for ip in allocations.values()}
        gateway = self.network.network_address + 1
        # hosts() leaves out the network and broadcast addresses (for prefixes up to /30).
        for candidate in self.network.hosts():
            if candidate != gateway and candidate not in taken:
                allocations[container_id] = str(candidate)
                self._write(self.network, allocations)
                return str(candidate)
        raise EngineError(
            f"failed to allocate an address in {self.network}: all "
            f"{self.network.num_addresses - 3} addresses are in use"
        )

    def release(self, container_id: str) -> str | None:
        """Frees the container's address; returns it (None if it had none)."""
        network, allocations = self._load()
        ip = allocations.pop(container_id, None)
        if ip is not None:
            self._write(network, allocations)
        return ip

    def forget(self) -> None:
        """Removes the file (the network is gone)."""
        self.path.unlink(missing_ok=True)
