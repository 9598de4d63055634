"""IPC namespace: System V objects and POSIX message queues do not cross it (config-linux.md:
Namespaces, ipc).

Objects are made with exclusive keys derived from the session token and the container id
(bulkhead.ipckeys), so the leak sentinel recognises ours; every object a test or a probe may
have made on the host is removed in a ``finally``, also when a broken runtime let the probe
make it in the host's namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from bulkhead import _sys
from bulkhead.containers import Container, ContainerFactory
from bulkhead.ipckeys import key_for
from bulkhead.spec import Spec
from conformance._namespaces import assert_own_namespace, shares, started
from conformance._support import WAIT_FOREVER, sh, without_namespace

# Per kind: create(key) -> id, lookup(key) -> id or None, remove(id).
Kind = tuple[Callable[[int], int], Callable[[int], int | None], Callable[[int], None]]
KINDS: dict[str, Kind] = {
    "shm": (_sys.shm_create, _sys.shm_lookup, _sys.shm_remove),
    "msg": (_sys.msg_create, _sys.msg_lookup, _sys.msg_remove),
}


def on_host(kind: str, key: int) -> bool:
    return KINDS[kind][1](key) is not None


def remove_from_host(kind: str, key: int) -> None:
    """Removes our object with ``key`` from the host's namespace, if there is one."""
    _, lookup, remove = KINDS[kind]
    ident = lookup(key)
    if ident is not None:
        with contextlib.suppress(OSError):  # gone meanwhile
            remove(ident)


@contextlib.contextmanager
def host_object(kind: str, key: int) -> Iterator[None]:
    create, _, _ = KINDS[kind]
    create(key)
    try:
        yield
    finally:
        remove_from_host(kind, key)


def probe(ctr: Container, verb: str, key: int) -> dict[str, str]:
    result = ctr.exec("bulkhead-probe", verb, hex(key))
    assert result.exit_code == 0, f"probe {verb} failed: {result.stdout} {result.stderr}"
    return result.fields()


def ipc_spec(containers: ContainerFactory, *, with_ipc_ns: bool) -> Spec:
    spec = containers.spec(sh(WAIT_FOREVER))
    if not with_ipc_ns:
        without_namespace(spec, "ipc")
    return spec


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_host_objects_are_invisible_inside(containers: ContainerFactory, kind: str) -> None:
    # The control is test_without_an_ipc_namespace_host_objects_are_shared: the same probe
    # does see a host object when the container shares the host's namespace.
    with started(containers) as ctr:
        assert_own_namespace(ctr, "ipc")
        key = key_for(ctr.id)
        with host_object(kind, key):
            assert probe(ctr, f"{kind}-exists", key)["present"] == "no"


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_container_objects_are_invisible_on_the_host(
    containers: ContainerFactory, kind: str
) -> None:
    with started(containers) as ctr:
        assert_own_namespace(ctr, "ipc")
        key = key_for(ctr.id)
        assert not on_host(kind, key), "the key is taken on the host before the test"
        try:
            assert probe(ctr, f"{kind}-create", key)["created"] == "yes"
            # The control: the probe sees its own object, so the host's lookup below can fail.
            assert probe(ctr, f"{kind}-exists", key)["present"] == "yes", "probe cannot see it"
            leaked = on_host(kind, key)
        finally:
            # A runtime that left the probe in the host's namespace made the object here.
            remove_from_host(kind, key)
        assert not leaked, f"a {kind} object made in the container is visible on the host"


@pytest.mark.spec("config-linux.namespaces.7")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_without_an_ipc_namespace_host_objects_are_shared(
    containers: ContainerFactory, kind: str
) -> None:
    # The control: the same probe does see host objects when no IPC namespace is asked for.
    with started(containers, ipc_spec(containers, with_ipc_ns=False)) as ctr:
        assert shares(ctr.pid, "ipc"), "the container got an IPC namespace of its own"
        key = key_for(ctr.id)
        with host_object(kind, key):
            assert probe(ctr, f"{kind}-exists", key)["present"] == "yes"


# /dev/mqueue inside is a mqueue filesystem the runtime mounted in the container's IPC
# namespace: it lists that namespace's queues, and creating a file in it creates a queue there
# (mq_overview(7)). Both tests below rely on it being that, not a plain directory.
MQUEUE = (
    'grep -q " /dev/mqueue .* - mqueue " /proc/self/mountinfo || { echo not-mqueue; exit 3; }; '
    'touch "/dev/mqueue/$1" && ls /dev/mqueue'
)


@pytest.mark.spec("config-linux.namespaces.apply-ns-ipc", "config-linux.namespaces.7")
@pytest.mark.parametrize("with_ipc_ns", [True, False], ids=["own-ipc-ns", "host-ipc-ns"])
def test_posix_message_queues_follow_the_ipc_namespace(
    containers: ContainerFactory, with_ipc_ns: bool
) -> None:
    with started(containers, ipc_spec(containers, with_ipc_ns=with_ipc_ns)) as ctr:
        assert shares(ctr.pid, "ipc") is not with_ipc_ns
        from_host, from_inside = f"{ctr.id}-mq-host", f"{ctr.id}-mq-inside"
        _sys.mq_create(from_host)
        try:
            listing = ctr.exec("sh", "-c", MQUEUE, "mqueue", from_inside)
            inside_seen_on_host = _sys.mq_exists(from_inside)
        finally:
            for name in (from_host, from_inside):
                if _sys.mq_exists(name):
                    _sys.mq_remove(name)
        assert listing.exit_code == 0, f"{listing.stdout} {listing.stderr}"
        names = set(listing.stdout.split())
        # The control: the container lists the queue it made itself.
        assert from_inside in names, f"the container's own queue is not listed: {names}"
        assert (from_host in names) is not with_ipc_ns
        assert inside_seen_on_host is not with_ipc_ns
