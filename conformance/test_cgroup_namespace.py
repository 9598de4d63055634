"""The cgroup namespace (config-linux.md "Namespaces", type cgroup): with one of its own, the
container sees its cgroup as the root of every hierarchy; without, it sees the host's paths.

The host's side is read in the host's cgroup namespace: the init's /proc/<pid>/cgroup there
names the container's real place (under cgroupsPath), and /proc/<pid>/ns/cgroup its namespace.
The container's side is its own /proc/self/cgroup, printed by the container process.
"""

from __future__ import annotations

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.hostview import namespace_id
from bulkhead.spec import Namespace
from conformance._cgroups import cgroup_lines
from conformance._support import sh, stoppable, wait_ready

# The container prints its own view, then waits, so the host can read the same process.
_SHOW = "cat /proc/self/cgroup >/seen; "


def _seen(lines: str) -> dict[str, str]:
    """hierarchy id → path, from the text of a /proc/<pid>/cgroup."""
    return {line.split(":", 2)[0]: line.split(":", 2)[2] for line in lines.splitlines() if line}


@pytest.mark.spec("config-linux.namespaces.apply-ns-cgroup")
@pytest.mark.parametrize("own", [True, False], ids=["own-cgroupns", "host-cgroupns"])
def test_the_container_sees_its_cgroup_as_root_only_in_its_own_namespace(
    containers: ContainerFactory, own: bool
) -> None:
    spec = containers.spec(sh(stoppable(first=_SHOW)))
    assert spec.linux is not None and spec.linux.namespaces is not None
    if own:
        spec.linux.namespaces.append(Namespace(type="cgroup"))
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        host_view = {ident: path for ident, _, path in cgroup_lines(ctr.pid)}
        inside = _seen((ctr.bundle.upper / "seen").read_text())
        shares = namespace_id(ctr.pid, "cgroup") == namespace_id("self", "cgroup")
        # The host sees the container under its cgroupsPath (the suite's /<id>), in some
        # hierarchy at least: the view inside is judged against that.
        placed = {i: p for i, p in host_view.items() if p.endswith(f"/{ctr.id}")}
        assert placed, f"the host sees no cgroup of {ctr.id} for its init: {host_view}"
        if own:
            assert not shares, "the container shares the host's cgroup namespace"
            rooted = {i: inside.get(i) for i in placed}
            assert all(p == "/" for p in rooted.values()), (
                f"with a cgroup namespace of its own, the container sees {rooted} for its own "
                f"cgroups (the host sees {placed})"
            )
        else:
            # The control: without one, the same probe shows the host's paths, so "/" above
            # is the namespace's doing and not how the probe reads.
            assert shares, "the container has a cgroup namespace it did not ask for"
            assert {i: inside.get(i) for i in placed} == placed
