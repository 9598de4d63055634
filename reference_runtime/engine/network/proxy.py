"""The userland port proxy (docker-proxy's role), as threads in the container's monitor.

``bind()`` makes the listening sockets on the host's loopback, in the caller's network namespace
(the machine's: these sockets are the engine's only host-side footprint). The CLI calls it
before anything else of the container exists, so a port in use fails early and leaves nothing
behind; the monitor inherits the sockets (``fds()`` / ``adopt()``) and calls ``start()``.

``start()`` runs one thread that setns(2)s into the engine's network namespace (that thread
only: the others of the process stay where they are) and waits on every listener. A socket
keeps the namespace it was made in, so the listeners and the connections they accept stay on
the host's loopback, while each socket this thread makes to reach ``target_ip`` is made in the
engine's namespace, where the bridge routes to the container.

TCP: each accepted connection gets a backend connection and two pump threads, one per
direction; an end-of-stream is passed on as a half-close (shutdown SHUT_WR), an error ends both.
UDP: the proxy thread keeps one connected backend socket per client address and forwards
replies back from the listener; a flow idle for 90 s is dropped (docker-proxy's
UDPConnTrackTimeout).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.network import netns as _netns
from reference_runtime.engine.network.ports import PortBinding

CONNECT_TIMEOUT = 10.0  # seconds to reach the container before the client's connection is closed
UDP_FLOW_TIMEOUT = 90.0
BACKLOG = 128
_CHUNK = 65536


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _publish_error(binding: PortBinding, exc: OSError) -> EngineError:
    where = binding.host_address + ("/udp" if binding.proto == "udp" else "")
    return EngineError(f"failed to publish port {where}: {_netns.reason(exc)}")


class _UdpFlow:
    __slots__ = ("backend", "client", "last", "listener")

    def __init__(self, listener: socket.socket, client: Any, backend: socket.socket) -> None:
        self.listener = listener
        self.client = client
        self.backend = backend
        self.last = time.monotonic()


class PortProxy:
    """Forwards each binding's host port to ``target_ip``:container_port, reached from inside
    the network namespace at ``netns`` (the engine's)."""

    def __init__(self, bindings: Sequence[PortBinding], target_ip: str, netns: Path) -> None:
        for binding in bindings:
            if binding.proto not in ("tcp", "udp"):
                raise EngineError(
                    f"failed to publish port {binding.host_address}: unknown protocol "
                    f"{binding.proto!r}"
                )
            if not _loopback(binding.host_ip):
                # The engine's one host-side footprint is loopback listeners (ports.py).
                raise EngineError(
                    f"failed to publish port {binding.host_address}: not a loopback address"
                )
        self.bindings = list(bindings)
        self.target_ip = target_ip
        self.netns = netns
        self._listeners: list[tuple[PortBinding, socket.socket]] = []
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._flows: dict[tuple[int, Any], _UdpFlow] = {}

    # --- host side: the listening sockets ------------------------------------------------------

    def bind(self) -> list[PortBinding]:
        """Binds every listening socket now, in the caller's network namespace; returns the
        bindings with the ports the kernel gave (host port 0 = any free one). On a failure the
        sockets bound so far are closed and EngineError says which port and why."""
        if self._listeners:
            return [binding for binding, _ in self._listeners]
        bound: list[tuple[PortBinding, socket.socket]] = []
        for binding in self.bindings:
            tcp = binding.proto == "tcp"
            kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
            sock = socket.socket(_family(binding.host_ip), kind | socket.SOCK_CLOEXEC)
            try:
                if tcp:
                    # As docker-proxy (Go's net.Listen): a previous run's connections in
                    # TIME_WAIT must not block the port; a live listener still does (EADDRINUSE).
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((binding.host_ip, binding.host_port))
                if tcp:
                    sock.listen(BACKLOG)  # at once: clients queue while the container starts
            except OSError as exc:
                sock.close()
                for _, other in bound:
                    other.close()
                raise _publish_error(binding, exc) from None
            bound.append((replace(binding, host_port=sock.getsockname()[1]), sock))
        self._listeners = bound
        return [binding for binding, _ in bound]

    def fds(self) -> list[int]:
        """The listening sockets' descriptors, in the order of ``bind()``'s result (close-on-exec:
        hand them to the monitor with subprocess's ``pass_fds``, or keep them across a fork)."""
        return [sock.fileno() for _, sock in self._listeners]

    @classmethod
    def adopt(cls, bindings: Sequence[PortBinding], fds: Sequence[int], target_ip: str,
              netns: Path) -> PortProxy:  # fmt: skip
        """A proxy over listening sockets bound elsewhere (the CLI's, inherited by the monitor);
        ``bindings`` are ``bind()``'s result, ``fds`` the matching ``fds()``."""
        if len(bindings) != len(fds):
            raise EngineError("failed to publish ports: bindings and descriptors do not match")
        proxy = cls(bindings, target_ip, netns)
        for binding, fd in zip(bindings, fds, strict=True):
            sock = socket.socket(fileno=fd)
            want = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
            if sock.type != want or sock.getsockname()[1] != binding.host_port:
                sock.detach()
                raise EngineError(
                    f"failed to publish port {binding.host_address}: descriptor {fd} is not its "
                    "listening socket"
                )
            os.set_inheritable(fd, False)
            proxy._listeners.append((binding, sock))
        return proxy

    # --- forwarding ----------------------------------------------------------------------------

    def start(self) -> None:
        """Starts forwarding (binds first if ``bind()`` was not called). Returns once the proxy
        thread is in the engine's namespace; EngineError if it cannot get there."""
        if self._thread is not None:
            return
        self.bind()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

        def run() -> None:
            try:
                _netns.enter(self.netns)
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop()

        self._thread = threading.Thread(target=run, name="bulkhead-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            self._close_wake()
            raise failure[0]

    def stop(self) -> None:
        """Closes the listeners and every live connection; joins every thread."""
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            live = list(self._live)
            workers = list(self._workers)
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv()
        for worker in workers:
            worker.join()
        for flow in self._flows.values():
            flow.backend.close()
        self._flows.clear()
        for _, sock in self._listeners:
            sock.close()
        self._listeners = []
        self._close_wake()

    close = stop

    def _close_wake(self) -> None:
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    def _loop(self) -> None:
        assert self._wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake[0], selectors.EVENT_READ, None)
            for binding, sock in self._listeners:
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, (binding, sock))
            while not self._stopping.is_set():
                timeout = 1.0 if self._flows else None
                for key, _ in sel.select(timeout):
                    if key.data is None:
                        return
                    if isinstance(key.data, _UdpFlow):
                        self._udp_reply(key.data)
                        continue
                    binding, sock = key.data
                    if binding.proto == "tcp":
                        self._accept(binding, sock)
                    else:
                        self._udp_request(sel, binding, sock)
                self._expire(sel)

    # --- TCP -----------------------------------------------------------------------------------

    def _accept(self, binding: PortBinding, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:
            return  # EMFILE and the like: this client is dropped, the listener stays
        client.setblocking(True)
        try:
            # Made by this thread, hence in the engine's namespace (see the module docstring).
            kind = socket.SOCK_STREAM | socket.SOCK_CLOEXEC
            backend = socket.socket(_family(self.target_ip), kind)
        except OSError:
            client.close()
            return
        worker = threading.Thread(target=self._serve, args=(client, backend, binding),
                                  name="bulkhead-proxy-conn", daemon=True)  # fmt: skip
        with self._lock:
            self._live.update((client, backend))
            self._workers.add(worker)
        worker.start()

    def _serve(self, client: socket.socket, backend: socket.socket, binding: PortBinding) -> None:
        try:
            try:
                backend.settimeout(CONNECT_TIMEOUT)
                backend.connect((self.target_ip, binding.container_port))
                backend.settimeout(None)
            except OSError:
                return  # nothing listens in the container (yet): the client sees the close
            if self._stopping.is_set():
                return
            upstream = threading.Thread(target=self._pump, args=(client, backend),
                                        name="bulkhead-proxy-pump", daemon=True)  # fmt: skip
            upstream.start()
            self._pump(backend, client)
            upstream.join()
        finally:
            with self._lock:
                self._live.difference_update((client, backend))
                self._workers.discard(threading.current_thread())
            client.close()
            backend.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            # A reset or a stop(): end both directions, not just this one.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on (a half-close)

    # --- UDP -----------------------------------------------------------------------------------

    def _udp_request(self, sel: selectors.BaseSelector, binding: PortBinding,
                     listener: socket.socket) -> None:  # fmt: skip
        try:
            data, client = listener.recvfrom(_CHUNK)
        except OSError:
            return
        key = (listener.fileno(), client)
        flow = self._flows.get(key)
        if flow is None:
            try:
                backend = socket.socket(_family(self.target_ip),
                                        socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)  # fmt: skip
                backend.connect((self.target_ip, binding.container_port))
                backend.setblocking(False)
            except OSError:
                return
            flow = self._flows[key] = _UdpFlow(listener, client, backend)
            sel.register(backend, selectors.EVENT_READ, flow)
        flow.last = time.monotonic()
        with contextlib.suppress(OSError):
            flow.backend.send(data)

    def _udp_reply(self, flow: _UdpFlow) -> None:
        try:
            data = flow.backend.recv(_CHUNK)
        except OSError:
            return  # ECONNREFUSED: an ICMP port unreachable from the container; keep the flow
        flow.last = time.monotonic()
        with contextlib.suppress(OSError):
            flow.listener.sendto(data, flow.client)

    def _expire(self, sel: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for key, flow in list(self._flows.items()):
            if now - flow.last > UDP_FLOW_TIMEOUT:
                sel.unregister(flow.backend)
                flow.backend.close()
                del self._flows[key]
