"""The file-backed IPAM (network/ipam.py): no kernel involved, only root/network/bridge.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.network.ipam import Ipam

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_allocations_start_after_the_gateway_and_are_kept_on_file(tmp_path: Path) -> None:
    path = tmp_path / "network" / "bridge.json"
    ipam = Ipam(path)
    assert (ipam.gateway, ipam.prefixlen) == ("172.30.0.1", 16)
    assert ipam.allocate(A) == "172.30.0.2"
    assert ipam.allocate(B) == "172.30.0.3"
    assert ipam.allocate(A) == "172.30.0.2"  # asking again gives the same address
    record = json.loads(path.read_text())
    assert record == {
        "bridge": "bh0",
        "subnet": "172.30.0.0/16",
        "gateway": "172.30.0.1",
        "allocations": {A: "172.30.0.2", B: "172.30.0.3"},
    }
    # Another instance (the next command) reads the same state.
    assert Ipam(path).get(B) == "172.30.0.3"
    assert [p.name for p in path.parent.iterdir()] == ["bridge.json"]  # no tmp file left


def test_a_released_address_is_the_next_handed_out(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "bridge.json")
    for container_id in (A, B, C):
        ipam.allocate(container_id)
    assert ipam.release(A) == "172.30.0.2"
    assert ipam.release(A) is None
    assert ipam.get(A) is None
    assert ipam.allocate("d" * 64) == "172.30.0.2"


def test_network_gateway_and_broadcast_are_never_handed_out(tmp_path: Path) -> None:
    # A /29: .0 network, .1 gateway, .7 broadcast; .2 to .6 for containers, then full.
    ipam = Ipam(tmp_path / "bridge.json", "10.9.8.0/29")
    got = [ipam.allocate(f"{i:x}" * 64) for i in range(5)]
    assert got == [f"10.9.8.{n}" for n in range(2, 7)]
    with pytest.raises(EngineError) as caught:
        ipam.allocate("f" * 64)
    assert str(caught.value) == (
        "failed to allocate an address in 10.9.8.0/29: all 5 addresses are in use"
    )
    # The refusal wrote nothing.
    assert "f" * 64 not in json.loads((tmp_path / "bridge.json").read_text())["allocations"]


@pytest.mark.parametrize(
    ("subnet", "why"),
    [
        ("172.30.0.1/16", "has host bits set"),
        ("300.0.0.0/8", "300.0.0.0/8"),
        ("fd00::/64", "fd00::/64"),
        ("10.0.0.0/31", "a /31 leaves no address for a container (at most /30)"),
        ("127.0.0.0/8", "not a unicast range a bridge can use"),
        ("224.0.0.0/4", "not a unicast range a bridge can use"),
        ("169.254.0.0/16", "not a unicast range a bridge can use"),
    ],
)
def test_bad_subnets_are_refused(tmp_path: Path, subnet: str, why: str) -> None:
    with pytest.raises(EngineError) as caught:
        Ipam(tmp_path / "bridge.json", subnet)
    assert str(caught.value).startswith(f"failed to configure network subnet {subnet}: ")
    assert why in str(caught.value)
    assert not (tmp_path / "bridge.json").exists()


def test_a_changed_subnet_is_refused_while_addresses_are_in_use(tmp_path: Path) -> None:
    path = tmp_path / "bridge.json"
    Ipam(path).allocate(A)
    other = Ipam(path, "10.1.0.0/24")
    with pytest.raises(EngineError) as caught:
        other.allocate(B)
    assert str(caught.value) == (
        "failed to configure network subnet 10.1.0.0/24: the bridge network has subnet "
        "172.30.0.0/16, in use by 1 container(s)"
    )
    # Control: once nothing uses the old subnet, the new one replaces it.
    Ipam(path).release(A)
    assert other.allocate(B) == "10.1.0.2"
    assert json.loads(path.read_text())["subnet"] == "10.1.0.0/24"


def test_a_corrupt_state_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bridge.json"
    path.write_text("{not json")
    with pytest.raises(EngineError) as caught:
        Ipam(path).allocate(A)
    assert str(caught.value).startswith(f"failed to read network state {path}: ")
    path.write_text("[]")
    with pytest.raises(EngineError, match="not an IPAM record"):
        Ipam(path).allocate(A)


def test_an_engine_given_another_subnet_still_sees_and_frees_the_old_addresses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.json"
    Ipam(path).allocate(A)
    Ipam(path).allocate(B)
    other = Ipam(path, "10.1.0.0/24")  # the next start, with another --subnet (collect runs)
    assert other.allocations() == {A: "172.30.0.2", B: "172.30.0.3"}
    assert str(other.subnet_in_use()) == "172.30.0.0/16"
    assert other.release(A) == "172.30.0.2"
    # B's address is still from the old subnet, and the file still says so.
    assert json.loads(path.read_text())["subnet"] == "172.30.0.0/16"
    assert other.release(B) == "172.30.0.3"
    assert str(other.subnet_in_use()) == "10.1.0.0/24"
