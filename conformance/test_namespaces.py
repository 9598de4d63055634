"""Which namespaces a container gets (config-linux.md: Namespaces), as a property.

For any set of namespace types in the config, the container's init is in a new namespace of
each listed type and shares the runtime's namespace of every type not listed. The host reads
/proc/<pid>/ns/* of the created container, so nothing needs to run inside it; the pid comes
from `state`, and is first checked on the host to be the container's (a live process rooted in
the bundle), so a wrong pid cannot make the namespaces look right.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given

from bulkhead import strategies
from bulkhead.containers import Container, ContainerFactory
from bulkhead.hostview import namespace_id
from bulkhead.spec import Namespace
from conformance._support import (
    assert_nothing_created,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
)

CHECKED = ("pid", "network", "ipc", "uts", "mount", "cgroup")


@pytest.mark.spec(
    "config-linux.namespaces.6",
    "config-linux.namespaces.7",
    "config-linux.namespaces.apply-ns-cgroup",
)
@given(kinds=strategies.namespace_sets())
# Every checked type both listed and not listed, whatever the random draws: without these, a
# run of few examples may never see a type shared (or never see it new). The mount namespace
# is always listed (see strategies.namespace_sets): the shared case is not safe to try.
@example(kinds=["mount"])
@example(kinds=["mount", "pid", "network", "ipc", "uts", "cgroup"])
def test_listed_namespaces_are_new_and_the_others_shared(
    containers: ContainerFactory, kinds: list[str]
) -> None:
    spec = containers.spec(["true"])
    assert spec.linux is not None
    spec.linux.namespaces = [Namespace(type=k) for k in kinds]  # type: ignore[arg-type]
    if "uts" not in kinds:
        spec.hostname = None  # a hostname needs a UTS namespace of its own (config.md)
    with containers.container(spec) as ctr:
        pid = container_process(ctr).pid
        for kind in CHECKED:
            own, host = namespace_id(pid, kind), namespace_id("self", kind)
            if kind in kinds:
                assert own != host, f"{kind} is listed but the container shares the host's"
            else:
                assert own == host, f"{kind} is not listed but the container got a new one"


@pytest.mark.spec("config-linux.namespaces.6")
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(k, marks=pytest.mark.spec(f"config-linux.namespaces.apply-ns-{k}"))
        for k in ("pid", "network", "ipc", "uts", "mount")
    ],
)
def test_each_default_namespace_is_a_new_one(containers: ContainerFactory, kind: str) -> None:
    # The created container's init already lives in its namespaces; the host reads them.
    with containers.container(containers.spec(["true"])) as ctr:
        pid = container_process(ctr).pid
        assert namespace_id(pid, kind) != namespace_id("self", kind)


@pytest.mark.spec("config-linux.namespaces.8", "runtime.create.9")
def test_a_duplicated_namespace_type_is_an_error(containers: ContainerFactory) -> None:
    spec = containers.spec(["true"])
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="ipc"))
    with containers.bundle(spec) as (cid, bundle):
        ctr = Container(cid, bundle, containers.client)
        try:
            since = boot_seconds()
            expect_refusal(ctr.create(check=False), "create with two ipc namespace entries")
            assert_nothing_created(
                containers, cid, bundle=bundle, pid_file=bundle.path / "pid", since=since
            )
            # Control: the same config without the duplicate is created.
            config = bundle.read_config()
            namespaces = config["linux"]["namespaces"]  # type: ignore[index]
            config["linux"]["namespaces"] = [  # type: ignore[index]
                ns for i, ns in enumerate(namespaces) if ns not in namespaces[:i]
            ]
            bundle.write_config(config)
            expect_success(ctr.create(check=False), "create without the duplicated entry")
            container_process(ctr)
        finally:
            ctr.close_stdio()
