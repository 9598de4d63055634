"""Mutants that get masked and read-only paths wrong."""

from __future__ import annotations

from mutants import Call, config

FIXTURES = [f"/srv/bulkhead/file-{i}" for i in range(6)] + [
    f"/srv/bulkhead/dir-{i}" for i in range(4)
]


@config("no-masked-paths")
def no_masked_paths(cfg: dict, call: Call) -> None:
    cfg.get("linux", {}).pop("maskedPaths", None)


@config("no-readonly-paths")
def no_readonly_paths(cfg: dict, call: Call) -> None:
    cfg.get("linux", {}).pop("readonlyPaths", None)


def _add(key: str, paths: list[str]):  # type: ignore[no-untyped-def]
    def mutate(cfg: dict, call: Call) -> None:
        linux = cfg.setdefault("linux", {})
        linux[key] = sorted(set(linux.get(key) or []) | set(paths))

    return mutate


config("mask-too-much")(_add("maskedPaths", FIXTURES))
config("readonly-too-much")(_add("readonlyPaths", ["/proc/sys", *FIXTURES]))
