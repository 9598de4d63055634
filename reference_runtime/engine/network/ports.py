"""Published ports: ``-p`` specs as docker writes them, restricted to the host's loopback.

Accepted (docker's forms, ``docker run --publish``): ``CONTAINER``, ``HOST:CONTAINER``,
``IP:HOST:CONTAINER``, ``IP::CONTAINER``, each with an optional ``/tcp`` or ``/udp``; ``IP`` may
be an IPv6 address in brackets (``[::1]:8080:80``). A missing or empty host port is 0: any free
port, reported back once bound. Without an IP the port is published on 127.0.0.1, not on every
address as docker does: the engine publishes only where nothing outside the machine can reach
(its only host-side footprint is listening sockets on the loopback), so a non-loopback IP is
refused rather than silently narrowed. Port ranges are refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from reference_runtime.engine.errors import EngineError

PROTOCOLS = ("tcp", "udp")
DEFAULT_HOST_IP = "127.0.0.1"


@dataclass(frozen=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"

    @property
    def host_address(self) -> str:
        """``127.0.0.1:8080`` / ``[::1]:8080``, as error lines and ``inspect`` write it."""
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{ip}:{self.host_port}"

    def __str__(self) -> str:
        return f"{self.host_address}->{self.container_port}/{self.proto}"


def _port(text: str, what: str, spec: str, *, zero: bool) -> int:
    if "-" in text:
        raise EngineError(f"failed to parse port spec {spec}: port ranges are not supported")
    if not text.isdigit():
        raise EngineError(f"failed to parse port spec {spec}: {what} {text!r} is not a number")
    value = int(text)
    if value > 65535 or (value == 0 and not zero):
        low = 0 if zero else 1
        raise EngineError(
            f"failed to parse port spec {spec}: {what} {value} is out of range ({low}-65535)"
        )
    return value


def _host_ip(text: str, spec: str) -> str:
    raw = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        raise EngineError(
            f"failed to parse port spec {spec}: {text!r} is not an IP address"
        ) from None
    if not ip.is_loopback:
        raise EngineError(
            f"failed to parse port spec {spec}: host IP {ip} is not a loopback address "
            "(ports are published on the host's loopback only)"
        )
    return str(ip)


def parse_publish(spec: str) -> PortBinding:
    """One ``-p`` value as a PortBinding; EngineError "failed to parse port spec X: ..."."""
    body, slash, proto = spec.partition("/")
    if slash and proto not in PROTOCOLS:
        raise EngineError(
            f"failed to parse port spec {spec}: protocol {proto!r} is not one of tcp, udp"
        )
    proto = proto or "tcp"
    host_ip = DEFAULT_HOST_IP
    if body.startswith("["):  # [v6]:host:container
        end = body.find("]")
        if end < 0 or body[end + 1 : end + 2] != ":":
            raise EngineError(f"failed to parse port spec {spec}: unbalanced '[' in the host IP")
        host_ip = _host_ip(body[: end + 1], spec)
        parts = ["", *body[end + 2 :].split(":")]
    else:
        parts = body.split(":")
    if not body or len(parts) > 3:
        raise EngineError(
            f"failed to parse port spec {spec}: expected [IP:][HOST:]CONTAINER[/PROTO]"
        )
    if len(parts) == 3 and not body.startswith("["):
        host_ip = _host_ip(parts[0], spec)
    host = parts[-2] if len(parts) >= 2 else ""
    if len(parts) == 2 and not host:
        raise EngineError(f"failed to parse port spec {spec}: the host port is empty")
    host_port = _port(host, "host port", spec, zero=True) if host else 0
    container_port = _port(parts[-1], "container port", spec, zero=False)
    return PortBinding(host_ip, host_port, container_port, proto)
