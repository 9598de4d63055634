"""IPC namespace: System V objects do not cross it (config-linux.md: Namespaces, ipc).

Objects are made with exclusive keys derived from the container id, and removed by the test.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator

import pytest

from bulkhead import _sys
from bulkhead.containers import Container, ContainerFactory
from bulkhead.hostview import namespace_id
from conformance._support import WAIT_FOREVER, sh, wait_ready, without_namespace

KINDS: dict[str, tuple[Callable[[int], int], Callable[[int], bool], Callable[[int], None]]] = {
    "shm": (_sys.shm_create, _sys.shm_exists, _sys.shm_remove),
    "msg": (_sys.msg_create, _sys.msg_exists, _sys.msg_remove),
}


def key_for(name: str) -> int:
    # A positive 31-bit key unique to this container id and object kind.
    return zlib.crc32(name.encode()) & 0x7FFFFFFF or 1


@contextlib.contextmanager
def host_object(kind: str, key: int) -> Iterator[None]:
    create, _, remove = KINDS[kind]
    ident = create(key)
    try:
        yield
    finally:
        remove(ident)


def probe(ctr: Container, verb: str, key: int) -> dict[str, str]:
    result = ctr.exec("bulkhead-probe", verb, hex(key))
    assert result.exit_code == 0, f"probe {verb} failed: {result.stdout} {result.stderr}"
    return result.fields()


@contextlib.contextmanager
def started(containers: ContainerFactory, *, with_ipc_ns: bool = True) -> Iterator[Container]:
    spec = containers.spec(sh(WAIT_FOREVER))
    if not with_ipc_ns:
        without_namespace(spec, "ipc")
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        yield ctr


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_host_objects_are_invisible_inside(containers: ContainerFactory, kind: str) -> None:
    with started(containers) as ctr:
        key = key_for(ctr.id + kind)
        with host_object(kind, key):
            assert probe(ctr, f"{kind}-exists", key)["present"] == "no"


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_container_objects_are_invisible_on_the_host(
    containers: ContainerFactory, kind: str
) -> None:
    _, exists, _ = KINDS[kind]
    with started(containers) as ctr:
        key = key_for(ctr.id + kind)
        assert probe(ctr, f"{kind}-create", key)["created"] == "yes"
        assert probe(ctr, f"{kind}-exists", key)["present"] == "yes", "probe cannot see its own"
        assert not exists(key), f"a {kind} object made in the container is visible on the host"


@pytest.mark.spec("config-linux.namespaces.7")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_without_an_ipc_namespace_host_objects_are_shared(
    containers: ContainerFactory, kind: str
) -> None:
    # The control: the same probe does see host objects when no IPC namespace is asked for.
    with started(containers, with_ipc_ns=False) as ctr:
        assert namespace_id(ctr.pid, "ipc") == namespace_id("self", "ipc")
        key = key_for(ctr.id + kind)
        with host_object(kind, key):
            assert probe(ctr, f"{kind}-exists", key)["present"] == "yes"


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc", "config-linux.namespaces.7")
@pytest.mark.parametrize("with_ipc_ns", [True, False], ids=["own-ipc-ns", "host-ipc-ns"])
def test_posix_message_queues_follow_the_ipc_namespace(
    containers: ContainerFactory, with_ipc_ns: bool
) -> None:
    # /dev/mqueue inside is mounted by the runtime in the container's IPC namespace, so it
    # lists the host's queues only when the container shares the host's namespace.
    with started(containers, with_ipc_ns=with_ipc_ns) as ctr:
        name = f"{ctr.id}-mq"
        _sys.mq_create(name)
        try:
            listing = ctr.exec("ls", "/dev/mqueue")
        finally:
            _sys.mq_remove(name)
        assert listing.exit_code == 0, listing.stderr
        assert (name in listing.stdout.split()) is not with_ipc_ns
