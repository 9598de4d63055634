"""Idmapped mounts in the reference runtime: validation, the plan, the host-side trees and the
init's move, against a recording fake; and the linux/mount_api.py calls against the kernel."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cli.features import features
from reference_runtime.errors import SpecError
from reference_runtime.linux import constants as c
from reference_runtime.rootfs.idmap import (
    MAX_EXTENTS,
    IdMap,
    check_maps,
    close_trees,
    open_trees,
)
from reference_runtime.rootfs.plan import MountStep, plan_rootfs
from reference_runtime.spec.validate import validate

ON_DISK, MAPPED = 1000, 2345


def load(raw: dict[str, Any], bundle: str, ns_type: int | None = None) -> Any:
    return validate(raw, bundle, ns_type_of=lambda p: ns_type, isdir=os.path.isdir)


def maps(*triples: tuple[int, int, int]) -> list[dict[str, int]]:
    return [{"containerID": a, "hostID": b, "size": n} for a, b, n in triples]


def idmapped(source: str, *options: str, mapped: bool = True, **extra: Any) -> dict[str, Any]:
    mount: dict[str, Any] = {"destination": "/srv/m", "type": "bind", "source": source,
                             "options": list(options), **extra}  # fmt: skip
    if mapped:
        mount["uidMappings"] = maps((ON_DISK, MAPPED, 1))
        mount["gidMappings"] = maps((ON_DISK, MAPPED, 1))
    return mount


def with_userns(raw: dict[str, Any], *, path: str | None = None) -> dict[str, Any]:
    ns: dict[str, Any] = {"type": "user"}
    if path is not None:
        ns["path"] = path
    raw["linux"]["namespaces"].append(ns)
    if path is None:
        raw["linux"]["uidMappings"] = maps((0, 100000, 65536))
        raw["linux"]["gidMappings"] = maps((0, 200000, 65536))
    return raw


def config(make_config: Any, *mounts: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = make_config()
    raw["mounts"] += list(mounts)
    return raw


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "mode"),
    [(["bind", "idmap"], "idmap"), (["rbind", "ridmap"], "ridmap"), (["rbind"], "idmap")],
)
def test_a_bind_with_mappings_is_an_idmapped_mount(
    make_config: Any, bundle: str, options: list[str], mode: str
) -> None:
    # Mappings without either option (config.md only SHOULDs one) are still applied.
    cfg = load(config(make_config, idmapped("/src", *options)), bundle)
    mount = cfg.mounts[-1]
    assert (mount.idmap, mount.uid_mappings, mount.gid_mappings) == (
        mode, [(ON_DISK, MAPPED, 1)], [(ON_DISK, MAPPED, 1)]
    )  # fmt: skip
    plain = load(config(make_config, idmapped("/src", "bind", mapped=False)), bundle)
    assert plain.mounts[-1].idmap == ""  # the control: no mappings, no option, no idmap


@pytest.mark.parametrize("given", ["uidMappings", "gidMappings"])
def test_one_mapping_without_the_other_is_refused(
    make_config: Any, bundle: str, given: str
) -> None:
    mount = idmapped("/src", "bind", "idmap", mapped=False, **{given: maps((ON_DISK, MAPPED, 1))})
    with pytest.raises(SpecError, match="without"):
        load(config(make_config, mount), bundle)


@pytest.mark.parametrize(
    "mount",
    [
        {"destination": "/srv/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
         "uidMappings": maps((0, 1, 1)), "gidMappings": maps((0, 1, 1))},
        {"destination": "/srv/m", "type": "tmpfs", "source": "tmpfs", "options": ["ridmap"]},
    ],
)  # fmt: skip
def test_an_idmapped_mount_that_is_not_a_bind_is_refused(
    make_config: Any, bundle: str, mount: dict[str, Any]
) -> None:
    raw = with_userns(config(make_config, mount))
    with pytest.raises(SpecError, match="only bind mounts"):
        load(raw, bundle)


def test_idmap_and_ridmap_together_are_refused(make_config: Any, bundle: str) -> None:
    with pytest.raises(SpecError, match="both"):
        load(config(make_config, idmapped("/src", "rbind", "idmap", "ridmap")), bundle)


def test_an_idmapped_remount_is_refused(make_config: Any, bundle: str) -> None:
    with pytest.raises(SpecError, match="remount"):
        load(config(make_config, idmapped("/src", "bind", "remount", "idmap")), bundle)


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_without_mappings_needs_a_user_namespace(
    make_config: Any, bundle: str, option: str
) -> None:
    # config.md: no mappings and no user namespace MUST be an error; with one, its mapping.
    mount = idmapped("/src", "rbind", option, mapped=False)
    with pytest.raises(SpecError, match="needs a user namespace"):
        load(config(make_config, mount), bundle)
    cfg = load(with_userns(config(make_config, mount)), bundle)
    assert cfg.mounts[-1].idmap == option and cfg.mounts[-1].uid_mappings == []


@pytest.mark.parametrize(
    ("triples", "error"),
    [
        ([(0, 10, 5), (4, 100, 1)], "containerID ranges overlap"),
        ([(0, 10, 5), (100, 14, 1)], "hostID ranges overlap"),
        ([(2**32 - 2, 0, 2)], "past the last id"),
        ([(0, 2**32 - 10, 10)], "past the last id"),
    ],
)
def test_mappings_the_kernel_would_refuse_are_refused_before_it(
    triples: list[tuple[int, int, int]], error: str
) -> None:
    with pytest.raises(SpecError, match=error):
        check_maps(triples, "mounts[0].uidMappings")


def test_adjacent_ranges_and_the_last_id_are_accepted() -> None:
    # The control of the above: touching ranges and an extent ending at uid 2**32 - 2 are fine.
    check_maps([(0, 10, 5), (5, 15, 5), (2**32 - 3, 100, 2)], "mounts[0].uidMappings")


def test_more_mappings_than_the_kernel_takes_are_refused() -> None:
    many = [(i, i + 1000, 1) for i in range(MAX_EXTENTS + 1)]
    check_maps(many[:MAX_EXTENTS], "x")
    with pytest.raises(SpecError, match=f"at most {MAX_EXTENTS}"):
        check_maps(many, "x")


def test_mapping_errors_reach_validation(make_config: Any, bundle: str) -> None:
    uids, gids = maps((0, 10, 5), (3, 100, 1)), maps((0, 10, 1))
    mount = idmapped("/src", "bind", "idmap", mapped=False, uidMappings=uids, gidMappings=gids)
    with pytest.raises(SpecError, match=r"mounts\[2\].uidMappings"):
        load(config(make_config, mount), bundle)


# --- the plan ----------------------------------------------------------------------------------


def step_of(cfg: Any) -> MountStep:
    steps = [s for s in plan_rootfs(cfg, {}, cgroup2=False) if isinstance(s, MountStep)]
    return steps[-1]


def test_the_plan_gives_the_mount_its_own_mapping(make_config: Any, bundle: str) -> None:
    cfg = load(with_userns(config(make_config, idmapped("/src", "rbind", "ridmap"))), bundle)
    step = step_of(cfg)
    assert step.idmap is not None
    assert (step.idmap.uids, step.idmap.gids, step.idmap.recursive) == (
        [(ON_DISK, MAPPED, 1)], [(ON_DISK, MAPPED, 1)], True
    )  # fmt: skip
    assert step.opts.data == [] and step.opts.recursive  # never handed to mount(2) as data
    assert "ridmap uids 1000:2345:1 gids 1000:2345:1" in step.describe()


def test_without_mappings_the_plan_takes_the_new_user_namespace_mapping(
    make_config: Any, bundle: str
) -> None:
    raw = with_userns(config(make_config, idmapped("/src", "bind", "idmap", mapped=False)))
    step = step_of(load(raw, bundle))
    assert step.idmap is not None
    assert (step.idmap.uids, step.idmap.gids, step.idmap.recursive) == (
        [(0, 100000, 65536)], [(0, 200000, 65536)], False
    )  # fmt: skip


def test_without_mappings_the_plan_takes_a_joined_user_namespace(
    make_config: Any, bundle: str
) -> None:
    raw = config(make_config, idmapped("/src", "bind", "idmap", mapped=False))
    with_userns(raw, path="/proc/1/ns/user")
    step = step_of(load(raw, bundle, ns_type=c.CLONE_NEWUSER))
    assert step.idmap is not None and step.idmap.userns_path == "/proc/1/ns/user"


def test_a_plain_bind_has_no_idmap(make_config: Any, bundle: str) -> None:
    step = step_of(load(config(make_config, idmapped("/src", "bind", mapped=False)), bundle))
    assert step.idmap is None and "idmap" not in step.describe()


# --- host side and init side, against a recording fake -----------------------------------------


@pytest.fixture
def system(recording_system: Any) -> Any:
    class Recording(type(recording_system)):  # type: ignore[misc]
        """The idmap calls of linux/system.py, recorded; descriptors are numbers from 200."""

        fds = itertools.count(200)
        fail_open_tree = False

        def mapping_userns(self, uids: Any, gids: Any) -> int:
            fd = next(self.fds)
            self.calls.append(("mapping_userns", uids, gids, fd))
            return fd

        def open_userns(self, path: str) -> int:
            fd = next(self.fds)
            self.calls.append(("open_userns", path, fd))
            return fd

        def open_tree(self, path: str, *, recursive: bool) -> int:
            if self.fail_open_tree:
                raise OSError(2, "fake", path)
            fd = next(self.fds)
            self.calls.append(("open_tree", path, recursive, fd))
            return fd

        def set_idmap(self, tree: int, userns: int, *, recursive: bool, what: str) -> None:
            self.calls.append(("set_idmap", tree, userns, recursive))

        def move_mount(self, tree: int, target: str, target_fd: int = -1) -> None:
            self.calls.append(("move_mount", tree, target, target_fd))

    return Recording({"/src": "dir", "/other": "dir"})


def two_mounts(make_config: Any, bundle: str) -> list[Any]:
    raw = config(make_config, idmapped("/src", "rbind", "ridmap"),
                 {**idmapped("/other", "bind", "idmap"), "destination": "/srv/n"})  # fmt: skip
    return plan_rootfs(load(raw, bundle), {}, cgroup2=False)


def test_the_trees_are_made_on_the_host_one_user_namespace_per_mapping(
    make_config: Any, bundle: str, system: Any
) -> None:
    steps = two_mounts(make_config, bundle)
    open_trees(steps, system)
    made = [call for call in system.calls if call[0] != "close"]
    userns = made[0][3]
    assert made == [
        ("mapping_userns", [(ON_DISK, MAPPED, 1)], [(ON_DISK, MAPPED, 1)], userns),
        ("open_tree", "/src", True, userns + 1), ("set_idmap", userns + 1, userns, True),
        ("open_tree", "/other", False, userns + 2), ("set_idmap", userns + 2, userns, False),
    ]  # fmt: skip
    # The namespace's descriptor goes (each mount holds the namespace); the trees stay.
    assert [call for call in system.calls if call[0] == "close"] == [("close", userns)]
    trees = [s.idmap.tree for s in steps if isinstance(s, MountStep) and s.idmap is not None]
    assert trees == [userns + 1, userns + 2]
    close_trees(steps, system)
    close_trees(steps, system)  # idempotent: the rollback may run it again
    assert [call[1] for call in system.calls if call[0] == "close"] == [userns, *trees]


def test_a_failure_on_the_host_closes_what_was_made(
    make_config: Any, bundle: str, system: Any
) -> None:
    steps = two_mounts(make_config, bundle)
    system.files.pop("/other")  # the second source is missing
    with pytest.raises(SpecError, match="/other does not exist"):
        open_trees(steps, system)
    opened = {call[-1] for call in system.calls if call[0] in ("mapping_userns", "open_tree")}
    closed = {call[1] for call in system.calls if call[0] == "close"}
    assert opened and opened == closed


def test_the_init_moves_the_tree_into_place_and_closes_it(
    make_config: Any, bundle: str, system: Any
) -> None:
    raw = config(make_config, idmapped("/src", "bind", "idmap", "ro"))
    cfg = load(raw, bundle)
    step = step_of(cfg)
    system.files[cfg.root_path] = "dir"
    open_trees([step], system)
    tree = step.idmap.tree if step.idmap else -1
    system.calls.clear()
    step.execute(system)
    dest = cfg.root_path + "/srv/m"
    assert ("move_mount", tree, dest, -1) in system.calls
    assert ("close", tree) in system.calls and step.idmap is not None and step.idmap.tree == -1
    # never bound the ordinary way; the "ro" is a remount of the moved mount
    assert system.mounts() == [("mount", None, dest, None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY,
                                None)]  # fmt: skip


def test_the_init_refuses_an_idmapped_mount_the_host_did_not_make(
    make_config: Any, bundle: str, system: Any
) -> None:
    cfg = load(config(make_config, idmapped("/src", "bind", "idmap")), bundle)
    step = step_of(cfg)
    assert step.idmap is not None
    step.idmap.source_kind = "dir"
    system.files[cfg.root_path] = "dir"
    with pytest.raises(SpecError, match="was not made"):
        step.execute(system)
    assert not any(call[0] in ("mount", "move_mount") for call in system.calls)


def test_features_declare_idmapped_mounts() -> None:
    assert features()["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}


def test_idmap_describes_its_mapping() -> None:
    assert IdMap([(0, 1, 2)], [(3, 4, 5)], recursive=False).describe() == (
        "idmap uids 0:1:2 gids 3:4:5"
    )
    joined = IdMap([], [], recursive=True, userns_path="/x")
    assert joined.describe() == "ridmap as user namespace /x"


# --- the kernel (root only) --------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="idmapped mounts need CAP_SYS_ADMIN on the host")
def test_the_kernel_shows_the_owner_through_the_mapping(tmp_path: Path) -> None:
    from reference_runtime.linux import mount_api
    from reference_runtime.linux.libc import mount, unshare

    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    target.mkdir()
    (source / "file").write_text("x")
    os.chown(source / "file", ON_DISK, ON_DISK)
    userns = mount_api.mapping_userns([(ON_DISK, MAPPED, 1)], [(ON_DISK, MAPPED, 1)])
    try:
        tree = mount_api.open_tree(str(source), recursive=False)
    finally:
        os.close(userns)  # the mount below keeps the namespace alive
    try:
        with pytest.raises(OSError):  # the control: a tree without mapping is no idmap
            mount_api.set_idmap(tree, 0, recursive=False, what="fd 0")
        userns = mount_api.mapping_userns([(ON_DISK, MAPPED, 1)], [(ON_DISK, MAPPED, 1)])
        mount_api.set_idmap(tree, userns, recursive=False, what=str(source))
        os.close(userns)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, in a mount namespace of its own
            try:
                unshare(c.CLONE_NEWNS)
                mount(None, "/", None, c.MS_SLAVE | c.MS_REC, None)
                pinned = os.open(target, os.O_PATH | os.O_CLOEXEC)
                mount_api.move_mount(tree, str(target), pinned)
                st = os.stat(target / "file")
                os.write(w, f"{st.st_uid}:{st.st_gid}".encode())
            finally:
                os._exit(0)
        os.close(w)
        seen = os.read(r, 64).decode()
        os.close(r)
        os.waitpid(pid, 0)
    finally:
        os.close(tree)
    assert seen == f"{MAPPED}:{MAPPED}"
    assert os.stat(source / "file").st_uid == ON_DISK  # on disk (and on the host) unchanged
    assert not os.path.ismount(target)  # it was mounted in the child's namespace only


def test_a_config_without_idmapped_mounts_loads_none_of_their_code(bundle: str) -> None:
    """The create path stays as it was for everyone else; an idmapped one adds nothing heavy."""
    code = f"""
import sys, os
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from reference_runtime.spec.validate import validate
from reference_runtime.rootfs.plan import plan_rootfs
raw = {{"ociVersion": "1.0.2", "root": {{"path": "rootfs"}}, "process": {{"args": ["sh"]}},
       "mounts": [{{"destination": "/m", "type": "bind", "source": "/", "options": ["bind"]}}],
       "linux": {{"namespaces": [{{"type": "mount"}}]}}}}
if sys.argv[1] == "idmap":
    raw["mounts"][0]["options"].append("idmap")
    for key in ("uidMappings", "gidMappings"):
        raw["mounts"][0][key] = [{{"containerID": 0, "hostID": 1, "size": 1}}]
plan_rootfs(validate(raw, {bundle!r}, ns_type_of=lambda p: None, isdir=os.path.isdir), {{}},
            cgroup2=False)
ours = {{"reference_runtime.rootfs.idmap", "reference_runtime.linux.mount_api"}}
heavy = {{"re", "json", "subprocess", "dataclasses", "typing", "enum", "inspect"}}
print(sorted(ours & set(sys.modules)), sorted(heavy & set(sys.modules)))
"""

    def loaded(kind: str) -> str:
        return subprocess.run([sys.executable, "-I", "-S", "-c", code, kind], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    assert loaded("plain") == "[] []"
    assert loaded("idmap") == "['reference_runtime.rootfs.idmap'] []"
