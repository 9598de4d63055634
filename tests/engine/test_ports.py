"""parse_publish: docker's -p forms, loopback-only host IPs, one clear line for a bad spec."""

from __future__ import annotations

import pytest

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.network.ports import PortBinding, parse_publish


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", PortBinding("127.0.0.1", 0, 80, "tcp")),
        ("8080:80", PortBinding("127.0.0.1", 8080, 80, "tcp")),
        ("8080:80/tcp", PortBinding("127.0.0.1", 8080, 80, "tcp")),
        ("5353:53/udp", PortBinding("127.0.0.1", 5353, 53, "udp")),
        ("127.0.0.1:8080:80", PortBinding("127.0.0.1", 8080, 80, "tcp")),
        ("127.0.0.1::80", PortBinding("127.0.0.1", 0, 80, "tcp")),
        ("127.0.0.2:9000:90/udp", PortBinding("127.0.0.2", 9000, 90, "udp")),
        ("[::1]:8080:80", PortBinding("::1", 8080, 80, "tcp")),
        ("[::1]::80/udp", PortBinding("::1", 0, 80, "udp")),
        ("0:80", PortBinding("127.0.0.1", 0, 80, "tcp")),
        ("65535:65535", PortBinding("127.0.0.1", 65535, 65535, "tcp")),
    ],
)
def test_parse_publish_accepts_dockers_forms(spec: str, want: PortBinding) -> None:
    assert parse_publish(spec) == want


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "expected [IP:][HOST:]CONTAINER[/PROTO]"),
        ("1:2:3:4", "expected [IP:][HOST:]CONTAINER[/PROTO]"),
        ("abc", "container port 'abc' is not a number"),
        ("8080:", "container port '' is not a number"),
        (":80", "the host port is empty"),
        ("8080:0", "container port 0 is out of range (1-65535)"),
        ("8080:65536", "container port 65536 is out of range (1-65535)"),
        ("70000:80", "host port 70000 is out of range (0-65535)"),
        ("8080:80/sctp", "protocol 'sctp' is not one of tcp, udp"),
        ("8080:80/", "protocol '' is not one of tcp, udp"),
        ("8000-8010:80", "port ranges are not supported"),
        ("0.0.0.0:8080:80", "host IP 0.0.0.0 is not a loopback address"),
        ("192.0.2.2:8080:80", "host IP 192.0.2.2 is not a loopback address"),
        ("[::]:8080:80", "host IP :: is not a loopback address"),
        ("localhost:8080:80", "'localhost' is not an IP address"),
        ("[::1:8080:80", "unbalanced '[' in the host IP"),
    ],
)
def test_parse_publish_refuses_bad_specs_in_one_line(spec: str, why: str) -> None:
    with pytest.raises(EngineError) as caught:
        parse_publish(spec)
    message = str(caught.value)
    assert message.startswith(f"failed to parse port spec {spec}: "), message
    assert why in message
    assert "\n" not in message


def test_binding_names_its_host_address_as_errors_and_inspect_write_it() -> None:
    assert PortBinding("127.0.0.1", 8080, 80, "tcp").host_address == "127.0.0.1:8080"
    assert PortBinding("::1", 8080, 80, "udp").host_address == "[::1]:8080"
    assert str(PortBinding("127.0.0.1", 8080, 80, "udp")) == "127.0.0.1:8080->80/udp"
