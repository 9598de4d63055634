"""The engine's networks: ``none`` (a namespace with only lo) and ``bridge``.

Everything lives in network namespaces the engine made: ``<exec-root>/netns/engine`` holds the
bridge and the host ends of the veths, ``<exec-root>/netns/<container id>`` each container's
namespace (given to the OCI runtime by path). The machine's own namespace gets nothing but the
port proxy's listening sockets on 127.0.0.1 (proxy.py). Addresses come from ipam.py.

Every mutating method runs under the engine's lock (``Layout.locked()``), held by the caller.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.network import bridge as _bridge
from reference_runtime.engine.network import endpoint as _endpoint
from reference_runtime.engine.network import netns
from reference_runtime.engine.network.endpoint import MODES, Endpoint
from reference_runtime.engine.network.ipam import DEFAULT_BRIDGE, DEFAULT_SUBNET, Ipam

__all__ = ["DEFAULT_BRIDGE", "DEFAULT_SUBNET", "Endpoint", "Network"]

ENGINE_NETNS = "engine"
_HEX = frozenset("0123456789abcdef")


def _check_id(container_id: str) -> None:
    # The id names a file under netns/ and gives the veth its name: lower-case hex only.
    if not 7 <= len(container_id) <= 64 or not _HEX.issuperset(container_id):
        raise EngineError(
            f"failed to connect container {container_id!r}: a container id is 7 to 64 "
            "lower-case hex digits"
        )


def _check_bridge(name: str) -> None:
    # IFNAMSIZ is 16 with the NUL (netdevice(7)); veth* and bhp* are the engine's veth names.
    plain = name.replace("-", "").replace("_", "")
    reserved = name.startswith(("veth", "bhp")) or name in ("lo", "eth0")
    if not 0 < len(name) <= 15 or not (plain.isascii() and plain.isalnum()) or reserved:
        raise EngineError(
            f"failed to configure network bridge {name!r}: a bridge name is 1 to 15 letters, "
            "digits, '-' or '_', not lo, eth0, veth* or bhp*"
        )


def _why(exc: BaseException) -> str:
    code = getattr(exc, "code", None)  # pyroute2's NetlinkError carries the errno as .code
    if isinstance(code, int) and code > 0:
        text = os.strerror(code)
        return text[:1].lower() + text[1:]
    if isinstance(exc, OSError):
        return netns.reason(exc)
    return str(exc) or type(exc).__name__


class Network:
    """The engine's networks under one layout (see the module's docstring)."""

    def __init__(self, layout: Layout, subnet: str = DEFAULT_SUBNET,
                 bridge: str = DEFAULT_BRIDGE) -> None:  # fmt: skip
        _check_bridge(bridge)
        self.layout = layout
        self.bridge = bridge
        self.ipam = Ipam(layout.network / "bridge.json", subnet, bridge)

    @property
    def engine_netns(self) -> Path:
        return self.layout.netns_dir / ENGINE_NETNS

    def netns_path(self, container_id: str) -> Path:
        return self.layout.netns_dir / container_id

    @property
    def _broadcast(self) -> str:
        return str(self.ipam.network.broadcast_address)

    # --- connect / disconnect ------------------------------------------------------------------

    def connect(self, container_id: str, mode: str) -> Endpoint:
        """Creates netns/<id> for ``mode``: "none" has only lo, up; "bridge" also has eth0 on
        the bridge (made with netns/engine on first use), an address from the IPAM and a
        default route through the gateway. A failure leaves nothing behind."""
        _check_id(container_id)
        if mode not in MODES:
            raise EngineError(
                f"failed to connect container {container_id[:12]}: unknown network mode "
                f"{mode!r} (none, bridge)"
            )
        path = self.netns_path(container_id)
        if os.path.lexists(path):
            raise EngineError(
                f"failed to connect container {container_id[:12]}: {path} already exists"
            )
        self.layout.netns_dir.mkdir(parents=True, exist_ok=True)
        if mode == "none":
            netns.create(path)
            return Endpoint(container_id, path, "none")

        ip = self.ipam.allocate(container_id)  # refuses a changed subnet before any kernel call
        found = Endpoint(
            container_id, path, "bridge", ip=ip, prefixlen=self.ipam.prefixlen,
            gateway=self.ipam.gateway, mac=_endpoint.mac_for(ip),
            host_veth=_endpoint.host_veth_name(container_id),
        )  # fmt: skip
        made_netns = False
        try:
            self._ensure_engine_netns()
            netns.create(path)
            made_netns = True
            with netns.rtnl(self.engine_netns) as engine:
                index = _bridge.ensure(engine, self.bridge, self.ipam.gateway,
                                       self.ipam.prefixlen, self._broadcast)  # fmt: skip
                if found.host_veth and engine.link_lookup(ifname=found.host_veth):
                    raise EngineError(
                        f"failed to connect container {container_id[:12]} to network "
                        f"{self.bridge}: {found.host_veth} is taken (another container's id "
                        "starts with the same 7 digits)"
                    )
                self._attach(engine, found, index)
        except BaseException as exc:
            if made_netns:
                with contextlib.suppress(EngineError):
                    netns.remove(path)
            self.ipam.release(container_id)
            if isinstance(exc, EngineError) or not isinstance(exc, Exception):
                raise
            raise EngineError(
                f"failed to connect container {container_id[:12]} to network {self.bridge}: "
                f"{_why(exc)}"
            ) from None
        return found

    def _attach(self, engine: Any, found: Endpoint, bridge_index: int) -> None:
        fd = os.open(found.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with netns.rtnl(found.netns) as inner:
                _endpoint.attach(engine, inner, container_ns_fd=fd, bridge_index=bridge_index,
                                 endpoint=found, broadcast=self._broadcast)  # fmt: skip
        finally:
            os.close(fd)

    def _ensure_engine_netns(self) -> None:
        if netns.is_netns(self.engine_netns):
            return
        netns.remove(self.engine_netns)  # a file left by a crash before its mount
        netns.create(self.engine_netns)

    def disconnect(self, container_id: str) -> None:
        """Removes the veth, releases the address, unmounts and removes netns/<id>. Idempotent;
        pyroute2 is only imported when there is a veth to remove."""
        _check_id(container_id)
        if self.ipam.get(container_id) is not None and netns.is_netns(self.engine_netns):
            try:
                with netns.rtnl(self.engine_netns) as engine:
                    _endpoint.detach(engine, _endpoint.host_veth_name(container_id))
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError(
                    f"failed to disconnect container {container_id[:12]} from network "
                    f"{self.bridge}: {_why(exc)}"
                ) from None
        netns.remove(self.netns_path(container_id))
        self.ipam.release(container_id)

    def endpoint(self, container_id: str) -> Endpoint | None:
        """The container's endpoint as the files show it, or None if it has no namespace."""
        path = self.netns_path(container_id)
        if not netns.is_netns(path):
            return None
        ip = self.ipam.get(container_id)
        if ip is None:
            return Endpoint(container_id, path, "none")
        subnet = self.ipam.subnet_in_use()  # the file's, even if this engine was given another
        return Endpoint(
            container_id, path, "bridge", ip=ip, prefixlen=subnet.prefixlen,
            gateway=str(subnet.network_address + 1), mac=_endpoint.mac_for(ip),
            host_veth=_endpoint.host_veth_name(container_id),
        )  # fmt: skip

    # --- a crashed engine's leftovers, and the end of the network ------------------------------

    def collect(self, live: set[str]) -> list[str]:
        """Removes the namespaces, veths and addresses of containers not in ``live`` (what a
        crashed engine left); returns what it removed, one line each."""
        removed: list[str] = []
        # Veths first: removing a namespace nothing uses any more destroys it, and the veth
        # pair with it, asynchronously (network_namespaces(7)); deleted by hand they are gone
        # at once, and the report does not depend on the kernel's timing.
        if netns.is_netns(self.engine_netns):
            keep = {_endpoint.host_veth_name(container_id) for container_id in live}
            try:
                with netns.rtnl(self.engine_netns) as engine:
                    # Every veth here not named for a live container is a crash's (a pair
                    # made by hand included). Host ends first: deleting one end deletes both.
                    names = sorted(_endpoint.veths(engine), key=lambda n: (n[:4] != "veth", n))
                    for name in names:
                        if name not in keep and _endpoint.detach(engine, name):
                            removed.append(f"veth {name}")
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError(f"failed to collect network {self.bridge}: {_why(exc)}") from None
        elif netns.remove(self.engine_netns):
            removed.append(f"netns {ENGINE_NETNS} (not a namespace)")
        if self.layout.netns_dir.is_dir():
            for entry in sorted(self.layout.netns_dir.iterdir()):
                if entry.name != ENGINE_NETNS and entry.name not in live and netns.remove(entry):
                    removed.append(f"netns {entry.name}")
        for container_id, ip in sorted(self.ipam.allocations().items()):
            if container_id not in live:
                self.ipam.release(container_id)
                removed.append(f"address {ip} of {container_id}")
        return removed

    def teardown(self) -> None:
        """Removes the bridge and netns/engine; refused while a container is still attached."""
        attached = set(self.ipam.allocations())
        if self.layout.netns_dir.is_dir():
            attached.update(p.name for p in self.layout.netns_dir.iterdir()
                            if p.name != ENGINE_NETNS)  # fmt: skip
        if attached:
            raise EngineError(
                f"failed to remove network {self.bridge}: {len(attached)} container(s) still "
                f"attached ({', '.join(sorted(c[:12] for c in attached))})"
            )
        if netns.is_netns(self.engine_netns):
            try:
                with netns.rtnl(self.engine_netns) as engine:
                    # Deleted by hand: a proxy thread still in the namespace would keep it, and
                    # the bridge with it, alive after the unmount.
                    _bridge.remove(engine, self.bridge)
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError(f"failed to remove network {self.bridge}: {_why(exc)}") from None
        netns.remove(self.engine_netns)
        self.ipam.forget()
