"""Mutants that get masked and read-only paths wrong."""

from __future__ import annotations

import shlex
from pathlib import Path

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


def _is_dir_inside(cfg: dict, call: Call, path: str) -> bool | None:
    """Whether ``path`` is a directory in the container, None if it is not there at all.

    /proc and /sys are mounted afresh inside, so the host's show what the container will see;
    anything else comes from the bundle's rootfs.
    """
    if path.startswith(("/proc/", "/sys/")):
        where = Path(path)
    else:
        root = Path(cfg["root"]["path"])
        where = (root if root.is_absolute() else _bundle(call) / root) / path.lstrip("/")
    if not where.exists():
        return None
    return where.is_dir()


def _bundle(call: Call) -> Path:
    args = call.rest
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b") and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--bundle="):
            return Path(arg.split("=", 1)[1])
    return Path.cwd()


def _fake_masks(cfg: dict, call: Call, file_source: Path, dir_mount: str) -> None:
    """Drops maskedPaths and mounts something else over each masked path: ``file_source``
    bound over files, ``dir_mount`` (mount(8) arguments before the target) over directories.

    runc refuses config mounts inside /proc, so a createContainer hook does the mounting: it
    runs in the container's mount namespace after the mounts and before pivot_root (config.md,
    createContainer hooks), where the rootfs is still reached by its host path. Whatever it
    mounts stays in that namespace: the bundle's rootfs is a private mount on the host.
    """
    linux = cfg.get("linux", {})
    root = Path(cfg["root"]["path"])
    rootfs = root if root.is_absolute() else _bundle(call) / root
    steps = []
    for path in linux.pop("maskedPaths", None) or []:
        kind = _is_dir_inside(cfg, call, path)
        if kind is None:
            continue  # runtimes skip a masked path that is not there; so does this one
        target = shlex.quote(str(rootfs / path.lstrip("/")))
        how = dir_mount if kind else f"--bind {shlex.quote(str(file_source))}"
        steps.append(f"mount {how} {target}")
    if steps:
        hook = {"path": "/bin/sh", "args": ["sh", "-e", "-c", "; ".join(steps)]}
        cfg.setdefault("hooks", {}).setdefault("createContainer", []).append(hook)


@config("mask-with-empty-file")
def mask_with_empty_file(cfg: dict, call: Call) -> None:
    # Reads as empty, but is a regular file of the bundle and a writable tmpfs: not a mask.
    empty = _bundle(call) / "mutant-empty-file"
    empty.touch()
    _fake_masks(cfg, call, empty, "-t tmpfs -o size=64k tmpfs")


@config("mask-with-unreadable")
def mask_with_unreadable(cfg: dict, call: Call) -> None:
    # Opening fails (EACCES: mode 0 and no CAP_DAC_OVERRIDE inside), which an "any error
    # counts as masked" check mistakes for masking; the content is merely locked away.
    bundle = _bundle(call)
    file, folder = bundle / "mutant-unreadable-file", bundle / "mutant-unreadable-dir"
    file.touch(mode=0)
    folder.mkdir(mode=0, exist_ok=True)
    file.chmod(0)
    folder.chmod(0)
    _fake_masks(cfg, call, file, f"--bind {shlex.quote(str(folder))}")
