"""A small rtnetlink client (netlink(7), rtnetlink(7)): links and addresses, nothing more.

Enough to carry out linux.netDevices (config-linux.md "Network Devices"): find a link by name,
move it into another network namespace under a new name (RTM_NEWLINK with IFLA_NET_NS_FD and
IFLA_IFNAME, as ``ip link set DEV netns NS name NEW`` does), set IFF_UP, and list and re-add
its addresses. Only the standard library: pyroute2 would cost 143 ms of imports on ``create``.

A netlink socket belongs to the network namespace it was opened in (network_namespaces(7)), so
``Route(netns_fd)`` opens it after a setns(2) of the calling thread there and steps back at once.
"""

from __future__ import annotations

import os
import socket
import struct

from reference_runtime.errors import SyscallError
from reference_runtime.linux import libc
from reference_runtime.linux.constants import CLONE_NEWNET, IFF_UP

# <linux/netlink.h>
NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
# <linux/rtnetlink.h>
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RT_SCOPE_UNIVERSE = 0
# <linux/if_link.h>
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_NET_NS_FD = 28
# <linux/if_addr.h>
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_PERMANENT = 0x80

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # struct ifinfomsg
_IFADDR = struct.Struct("=BBBBI")  # struct ifaddrmsg
_ATTR = struct.Struct("=HH")  # struct rtattr
_ERROR = struct.Struct("=i")  # struct nlmsgerr, its error field


class Link:
    __slots__ = ("address", "flags", "index", "name")

    def __init__(self, index: int, name: str, flags: int, address: bytes | None) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.address = address  # the link-layer address (IFLA_ADDRESS), if the link has one


class Address:
    """One address of a link: the ifaddrmsg fields and the attributes that make it again."""

    __slots__ = ("attrs", "family", "flags", "prefixlen", "scope")

    def __init__(self, family: int, prefixlen: int, flags: int, scope: int,
                 attrs: dict[int, bytes]) -> None:  # fmt: skip
        self.family = family
        self.prefixlen = prefixlen
        self.flags = flags
        self.scope = scope
        self.attrs = attrs

    @property
    def permanent_global(self) -> bool:
        # rtnetlink(7): IFA_F_PERMANENT marks an address configured by hand (not a SLAAC or DHCP
        # lease); the full flags are in IFA_FLAGS when the 8-bit field cannot hold them.
        flags = self.flags
        if IFA_FLAGS in self.attrs:
            flags = struct.unpack("=I", self.attrs[IFA_FLAGS][:4])[0]
        return self.scope == RT_SCOPE_UNIVERSE and bool(flags & IFA_F_PERMANENT)


def _attr(kind: int, data: bytes) -> bytes:
    length = _ATTR.size + len(data)
    return _ATTR.pack(length, kind) + data + b"\0" * (-length % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size : offset + length]  # no NLA_F_* bits
        offset += (length + 3) & ~3
    return found


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


class Route:
    """A NETLINK_ROUTE socket, in the caller's network namespace or in ``netns_fd``'s."""

    def __init__(self, netns_fd: int | None = None) -> None:
        self._seq = 0
        if netns_fd is None:
            self._sock = self._open()
            return
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(netns_fd, CLONE_NEWNET, "the container's network namespace")
            try:
                self._sock = self._open()
            finally:
                libc.setns(own, CLONE_NEWNET, "the runtime's network namespace")
        finally:
            os.close(own)

    @staticmethod
    def _open() -> socket.socket:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 NETLINK_ROUTE)  # fmt: skip
            sock.bind((0, 0))
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "socket", "AF_NETLINK") from None
        return sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Route:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------

    def _send(self, kind: int, flags: int, body: bytes, what: str) -> int:
        self._seq += 1
        message = _HEADER.pack(_HEADER.size + len(body), kind, flags, self._seq, 0) + body
        try:
            self._sock.send(message)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "netlink", what) from None
        return self._seq

    def _replies(self, seq: int, what: str) -> list[tuple[int, bytes]]:
        """The (type, payload) messages answering ``seq`` until the ack or the dump's end;
        a negative error in the answer raises it as a SyscallError naming ``what``."""
        out: list[tuple[int, bytes]] = []
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except OSError as exc:
                raise SyscallError(exc.errno or 0, "netlink", what) from None
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, got_seq, _pid = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    error = _ERROR.unpack_from(payload)[0]
                    if error:
                        raise SyscallError(-error, "netlink", what)
                    return out  # the ack of a request
                out.append((kind, payload))

    def _ask(self, kind: int, body: bytes, what: str, flags: int = 0) -> None:
        self._replies(self._send(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body, what), what)

    # --- links -----------------------------------------------------------------------------

    def links(self) -> list[Link]:
        seq = self._send(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP,
                         _IFINFO.pack(0, 0, 0, 0, 0), "links")  # fmt: skip
        found = []
        for kind, payload in self._replies(seq, "links"):
            if kind != RTM_NEWLINK:
                continue
            _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
            attrs = _attrs(payload[_IFINFO.size :])
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
            found.append(Link(index, name, flags, attrs.get(IFLA_ADDRESS)))
        return found

    def link(self, name: str) -> Link | None:
        return next((link for link in self.links() if link.name == name), None)

    def move(self, index: int, netns_fd: int, name: str, what: str) -> None:
        """Moves link ``index`` into the namespace of ``netns_fd``, renamed ``name`` there (a
        name with ``%d`` lets the kernel pick the first free number, netdevice(7))."""
        body = _IFINFO.pack(0, 0, index, 0, 0)
        body += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd)) + _attr(IFLA_IFNAME, _name(name))
        self._ask(RTM_NEWLINK, body, what)

    def set_up(self, index: int, up: bool, what: str) -> None:
        self._ask(RTM_NEWLINK, _IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP), what)

    # --- addresses ---------------------------------------------------------------------------

    def addresses(self, index: int) -> list[Address]:
        seq = self._send(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
                         _IFADDR.pack(0, 0, 0, 0, 0), "addresses")  # fmt: skip
        found = []
        for kind, payload in self._replies(seq, "addresses"):
            family, prefixlen, flags, scope, got = _IFADDR.unpack_from(payload)
            if kind == RTM_NEWADDR and got == index:
                found.append(Address(family, prefixlen, flags, scope,
                                     _attrs(payload[_IFADDR.size :])))  # fmt: skip
        return found

    def add_address(self, index: int, address: Address, what: str) -> None:
        # IFA_LABEL is left out: it carries the old device name, which the kernel would refuse.
        body = _IFADDR.pack(address.family, address.prefixlen, 0, address.scope, index)
        for kind in (IFA_LOCAL, IFA_ADDRESS, IFA_BROADCAST):
            if kind in address.attrs:
                body += _attr(kind, address.attrs[kind])
        self._ask(RTM_NEWADDR, body, what, NLM_F_CREATE | NLM_F_EXCL)
