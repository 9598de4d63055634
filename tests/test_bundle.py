"""The bundle builder's part in user namespaces: which host ids get the container's ``/``."""

from __future__ import annotations

from bulkhead.bundle import mapped_root
from bulkhead.spec import IDMapping, Namespace, Spec, default_spec


def _userns(path: str | None = None, uids: list[IDMapping] | None = None,
            gids: list[IDMapping] | None = None) -> Spec:  # fmt: skip
    spec = default_spec()
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="user", path=path))
    spec.linux.uid_mappings = uids
    spec.linux.gid_mappings = gids
    return spec


def test_the_host_ids_of_container_root_own_the_rootfs() -> None:
    uids = [IDMapping(container_id=1000, host_id=5000, size=10),
            IDMapping(container_id=0, host_id=100000, size=1000)]  # fmt: skip
    gids = [IDMapping(container_id=0, host_id=200000, size=65536)]
    assert mapped_root(_userns(uids=uids, gids=gids)) == (100000, 200000)
    # A raw config.json document reads the same.
    assert mapped_root(_userns(uids=uids, gids=gids).to_json_dict()) == (100000, 200000)


def test_no_owner_without_a_new_user_namespace_that_maps_root() -> None:
    assert mapped_root(default_spec()) is None
    joined = _userns(path="/proc/1/ns/user")
    assert mapped_root(joined) is None
    no_root = [IDMapping(container_id=1, host_id=100001, size=10)]
    assert mapped_root(_userns(uids=no_root, gids=no_root)) is None
