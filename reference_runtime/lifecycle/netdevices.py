"""linux.netDevices during create (config-linux.md "Network Devices", runtime-spec v1.2).

Each listed device of the runtime's network namespace is moved into the container's, under its
new name (a ``%d`` template lets the kernel pick a free one), its permanent global addresses
made again there (a move to another namespace drops them: the kernel unregisters the device from
the old one), and set up. Before anything is moved, every device must exist and every fixed new
name be free in the container's namespace: the spec asks for the check, and a rename that fails
after the move would leave the device behind under its old name.

Every move registers its rollback, so a create that fails later puts the device back, with its
own name, addresses and up/down state, as if nothing had been tried (runtime.md "Errors").
Nothing is done at delete: the spec forbids moving devices back then; the kernel returns a
physical device to the initial namespace and destroys a virtual one with the namespace.
"""

from __future__ import annotations

import os

from reference_runtime.errors import SpecError, SyscallError
from reference_runtime.linux.constants import IFF_UP
from reference_runtime.linux.netlink import Address, Link, Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ENODEV = 19


def check_present(devices: list[tuple[str, str]]) -> None:
    """Before the container exists: every device is in the runtime's network namespace."""
    with Route() as route:
        present = {link.name for link in route.links()}
    for host_name, _ in devices:
        if host_name not in present:
            raise SpecError(f"linux.netDevices: no device {host_name!r} in the runtime's "
                            "network namespace")  # fmt: skip


def _open_netns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "open", path) from None


def _find(route: Route, before: Link, name: str) -> Link:
    """The moved device in its new namespace: its ifindex is kept unless taken there, its
    link-layer address always; a fixed name finds it too."""
    links = route.links()
    for link in links:
        if link.index == before.index and link.address == before.address:
            return link
    if "%" not in name:
        for link in links:
            if link.name == name:
                return link
    same = [link for link in links if before.address and link.address == before.address]
    if len(same) == 1:
        return same[0]
    raise SyscallError(ENODEV, "find", f"device {before.name} after its move")


def move_in(devices: list[tuple[str, str]], pid: int, undo: list[Callable[[], None]]) -> None:
    """Moves ``devices`` (runtime name, container name) into the network namespace of ``pid``."""
    target = _open_netns(f"/proc/{pid}/ns/net")
    try:
        if os.fstat(target).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise SpecError("linux.netDevices: the container's network namespace is the "
                            "runtime's own")  # fmt: skip
        with Route() as host, Route(target) as inside:
            taken = {link.name for link in inside.links()}
            for host_name, name in devices:
                if "%" not in name and name in taken:
                    raise SpecError(f"linux.netDevices: {host_name} cannot be renamed {name!r}: "
                                    "the container's network namespace has that name")  # fmt: skip
            for host_name, name in devices:
                link = host.link(host_name)
                if link is None:
                    raise SpecError(f"linux.netDevices: no device {host_name!r} in the runtime's "
                                    "network namespace")  # fmt: skip
                kept = [a for a in host.addresses(link.index) if a.permanent_global]
                host.move(link.index, target, name, f"move {host_name} into the container")
                undo.append(_mover_back(pid, link, kept))
                moved = _find(inside, link, name)
                for address in kept:
                    inside.add_address(moved.index, address, f"address of {moved.name}")
                inside.set_up(moved.index, True, f"set {moved.name} up")
                taken.add(moved.name)
    finally:
        os.close(target)


def _mover_back(pid: int, before: Link, kept: list[Address]) -> Callable[[], None]:
    return lambda: _move_back(pid, before, kept)


def _move_back(pid: int, before: Link, kept: list[Address]) -> None:
    """The rollback of one move: the device back under its own name, addresses and state."""
    target = _open_netns(f"/proc/{pid}/ns/net")
    own = _open_netns("/proc/self/ns/net")
    try:
        with Route(target) as inside:
            moved = _find(inside, before, before.name)
            inside.move(moved.index, own, before.name, f"move {moved.name} back")
    finally:
        os.close(target)
        os.close(own)
    with Route() as host:
        link = host.link(before.name)
        if link is None:
            return
        for address in kept:
            host.add_address(link.index, address, f"address of {before.name}")
        if before.flags & IFF_UP:
            host.set_up(link.index, True, f"set {before.name} up")
