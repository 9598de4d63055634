"""User namespaces for the conformance modules: a config with a new one (or one joined by path)
and the host's reading of /proc/<pid>/uid_map, gid_map and status.

The default maps send container uid 0 to host uid 100000 and gid 0 to host gid 200000, so a uid
taken for a gid (or no mapping at all) shows. The bundle builder gives the container's ``/``
(the overlay upper directory) to those host ids (bulkhead.bundle.mapped_root).
"""

from __future__ import annotations

from pathlib import Path

from bulkhead.spec import IDMapping, Namespace, Spec

UID_HOST = 100000  # container uid 0 on the host
GID_HOST = 200000  # container gid 0 on the host
SIZE = 65536


def mapping(container_id: int, host_id: int, size: int) -> IDMapping:
    return IDMapping(container_id=container_id, host_id=host_id, size=size)


def with_userns(
    spec: Spec,
    uids: list[IDMapping] | None = None,
    gids: list[IDMapping] | None = None,
    *,
    path: str | None = None,
) -> Spec:
    """Adds a user namespace: new, with the given maps (default 0 -> 100000 for uids and
    0 -> 200000 for gids, 65536 ids each), or joined at ``path`` (no maps then)."""
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="user", path=path))
    if path is None:
        spec.linux.uid_mappings = uids or [mapping(0, UID_HOST, SIZE)]
        spec.linux.gid_mappings = gids or [mapping(0, GID_HOST, SIZE)]
    return spec


def maps_of(text: str) -> list[tuple[int, int, int]]:
    """The (inside, outside, length) lines of a uid_map or gid_map."""
    found = []
    for line in text.splitlines():
        if line.strip():
            inside, outside, length = (int(n) for n in line.split())
            found.append((inside, outside, length))
    return found


def host_maps(pid: int | str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """/proc/<pid>/uid_map and gid_map as the host reads them."""
    return (
        maps_of(Path(f"/proc/{pid}/uid_map").read_text()),
        maps_of(Path(f"/proc/{pid}/gid_map").read_text()),
    )


def status_ids(pid: int) -> dict[str, list[int]]:
    """The Uid and Gid lines of /proc/<pid>/status, read from the host: real, effective, saved
    and filesystem ids as the host's user namespace sees them."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            found[key] = [int(n) for n in value.split()]
    return found
