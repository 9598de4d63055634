"""Mutants that get idmapped mounts wrong (config.md "Mounts": uidMappings/gidMappings, idmap
and ridmap): the fields ignored as an older runtime would, the mapping read the wrong way round,
ridmap applied to the top mount only, the container's user namespace mapping taken over the
mount's own, an idmap without any mapping bound unmapped instead of refused.

They need a real runtime that implements idmapped mounts and says so in ``features``
(BULKHEAD_REAL_RUNTIME=.venv/bin/bulkhead-runtime): with one that does not, the idmap tests
skip. Each changes only the bind mounts a test adds after `runc spec`'s defaults, and only
their mappings: none reaches anything of the host but the test's own source directory.
"""

from __future__ import annotations

from mutants import Call, config
from mutants.rootfs import DEFAULT_MOUNTS

IDMAP_OPTIONS = ("idmap", "ridmap")


def _idmapped(cfg: dict) -> list[dict]:
    mounts = cfg.get("mounts", [])
    assert isinstance(mounts, list)
    return [
        m for m in mounts[DEFAULT_MOUNTS:]
        if m.get("uidMappings") or m.get("gidMappings")
        or any(o in IDMAP_OPTIONS for o in m.get("options", []))
    ]  # fmt: skip


def _drop_options(mount: dict) -> None:
    mount["options"] = [o for o in mount.get("options", []) if o not in IDMAP_OPTIONS]


@config("idmap-ignored")
def idmap_ignored(cfg: dict, call: Call) -> None:
    # A runtime that predates idmapped mounts: the fields and the options are not seen at all.
    for m in _idmapped(cfg):
        m.pop("uidMappings", None)
        m.pop("gidMappings", None)
        _drop_options(m)


@config("idmap-ids-swapped")
def idmap_ids_swapped(cfg: dict, call: Call) -> None:
    # containerID and hostID taken the wrong way round (the mapping applied inverted).
    for m in _idmapped(cfg):
        for key in ("uidMappings", "gidMappings"):
            for entry in m.get(key) or []:
                entry["containerID"], entry["hostID"] = entry["hostID"], entry["containerID"]


@config("ridmap-top-only")
def ridmap_top_only(cfg: dict, call: Call) -> None:
    # ridmap applied as idmap: the submounts of the rbind keep their owners.
    for m in _idmapped(cfg):
        m["options"] = ["idmap" if o == "ridmap" else o for o in m.get("options", [])]


@config("idmap-userns-mapping-wins")
def idmap_userns_mapping_wins(cfg: dict, call: Call) -> None:
    # In a user namespace the mount's own mappings are passed over for the container's.
    namespaces = (cfg.get("linux") or {}).get("namespaces") or []
    if not any(ns.get("type") == "user" for ns in namespaces):
        return
    for m in _idmapped(cfg):
        m.pop("uidMappings", None)
        m.pop("gidMappings", None)


@config("idmap-unmapped-without-mappings")
def idmap_unmapped_without_mappings(cfg: dict, call: Call) -> None:
    # idmap/ridmap without mappings neither takes the user namespace's mapping nor fails: the
    # source is bound unmapped.
    for m in _idmapped(cfg):
        if not (m.get("uidMappings") or m.get("gidMappings")):
            _drop_options(m)
