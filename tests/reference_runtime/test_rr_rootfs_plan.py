"""The rootfs plan: built from the config alone, described, and executed against a fake."""

from __future__ import annotations

import os
from typing import Any

import pytest

from reference_runtime.errors import SpecError
from reference_runtime.linux import constants as c
from reference_runtime.rootfs.options import parse_options
from reference_runtime.rootfs.paths import resolve_in_root
from reference_runtime.rootfs.plan import (
    BindRootfs,
    CgroupMount,
    MakeDevice,
    MaskPath,
    MountStep,
    PivotRoot,
    ReadonlyPath,
    ReadonlyRoot,
    SetPropagation,
    Symlink,
    plan_rootfs,
)
from reference_runtime.spec.validate import validate


def load(raw: dict[str, Any], bundle: str) -> Any:
    return validate(raw, bundle, ns_type_of=lambda p: None, isdir=os.path.isdir)


def test_the_plan_follows_the_spec_order(make_config: Any, bundle: str) -> None:
    raw = make_config()
    raw["root"]["readonly"] = True
    raw["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                          "options": ["ro", "nosuid"]})  # fmt: skip
    steps = plan_rootfs(load(raw, bundle), {"pids": "/sys/fs/cgroup/pids/x"}, cgroup2=False)
    kinds = [type(s) for s in steps]
    assert kinds[:2] == [SetPropagation, BindRootfs]
    assert kinds[2:5] == [MountStep, MountStep, CgroupMount]
    assert kinds.index(MakeDevice) > kinds.index(CgroupMount)
    assert kinds.index(Symlink) < kinds.index(PivotRoot)
    assert kinds.index(PivotRoot) < kinds.index(ReadonlyPath) < kinds.index(MaskPath)
    assert kinds[-1] is ReadonlyRoot
    for step in steps:  # every step can say what it does, in one line
        text = step.describe()
        assert text and "\n" not in text


def test_default_devices_are_not_made_over_a_bind_mounted_dev(
    make_config: Any, bundle: str
) -> None:
    raw = make_config()
    raw["mounts"][1] = {"destination": "/dev", "type": "bind", "source": "/dev",
                        "options": ["rbind"]}  # fmt: skip
    steps = plan_rootfs(load(raw, bundle), {}, cgroup2=False)
    assert not any(isinstance(s, MakeDevice) for s in steps)


def test_mounts_execute_in_config_order_with_their_flags(
    make_config: Any, bundle: str, recording_system: Any
) -> None:
    raw = make_config()
    raw["mounts"].append({"destination": "/srv/ro", "type": "tmpfs", "source": "tmpfs",
                          "options": ["ro", "size=64k", "rprivate"]})  # fmt: skip
    cfg = load(raw, bundle)
    root = cfg.root_path
    recording_system.files[root] = "dir"
    for step in plan_rootfs(cfg, {}, cgroup2=False):
        if isinstance(step, PivotRoot):
            break
        step.execute(recording_system)
    mounts = recording_system.mounts()
    assert mounts[0] == ("mount", None, "/", None, c.MS_SLAVE | c.MS_REC, None)
    assert mounts[1] == ("mount", root, root, None, c.MS_BIND | c.MS_REC, None)
    assert mounts[2] == ("mount", "proc", root + "/proc", "proc", 0, None)
    assert mounts[3] == ("mount", "tmpfs", root + "/dev", "tmpfs", c.MS_NOSUID, "mode=755")
    assert mounts[4] == ("mount", "tmpfs", root + "/srv/ro", "tmpfs", c.MS_RDONLY, "size=64k")
    assert mounts[5] == ("mount", None, root + "/srv/ro", None, c.MS_PRIVATE | c.MS_REC, None)
    # mount points are created inside the rootfs, parents first
    made = [call[1] for call in recording_system.calls if call[0] == "mkdir"]
    assert made.index(root + "/srv") < made.index(root + "/srv/ro")
    nodes = [call[1] for call in recording_system.calls if call[0] == "mknod"]
    assert root + "/dev/null" in nodes and root + "/dev/tty" in nodes


def test_a_read_only_bind_mount_is_bound_then_remounted(
    make_config: Any, bundle: str, recording_system: Any
) -> None:
    os.mkdir(os.path.join(bundle, "data"))
    raw = make_config()
    raw["mounts"] = [{"destination": "/srv/data", "type": "bind", "source": "data",
                      "options": ["rbind", "ro", "nosuid"]}]  # fmt: skip
    cfg = load(raw, bundle)
    step = next(s for s in plan_rootfs(cfg, {}, cgroup2=False) if isinstance(s, MountStep))
    recording_system.files[os.path.join(bundle, "data")] = "dir"
    step.execute(recording_system)
    source = os.path.join(bundle, "data")  # relative sources are relative to the bundle
    target = cfg.root_path + "/srv/data"
    assert recording_system.mounts() == [
        ("mount", source, target, None, c.MS_BIND | c.MS_REC, None),
        ("mount", None, target, None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_NOSUID,
         None),
    ]  # fmt: skip


def test_a_missing_bind_source_is_a_spec_error(
    make_config: Any, bundle: str, recording_system: Any
) -> None:
    raw = make_config()
    raw["mounts"] = [{"destination": "/x", "type": "bind", "source": "/nope", "options": []}]
    step = next(s for s in plan_rootfs(load(raw, bundle), {}, False) if isinstance(s, MountStep))
    with pytest.raises(SpecError, match="does not exist"):
        step.execute(recording_system)


def test_masking_binds_dev_null_over_files_and_tmpfs_over_directories(
    recording_system: Any,
) -> None:
    recording_system.files.update({"/proc/kcore": "file", "/sys/firmware": "dir"})
    for path in ("/proc/kcore", "/sys/firmware", "/proc/absent"):
        MaskPath(path).execute(recording_system)
    assert recording_system.mounts() == [
        ("mount", "/dev/null", "/proc/kcore", None, c.MS_BIND, None),
        ("mount", "tmpfs", "/sys/firmware", "tmpfs", c.MS_RDONLY, "size=0k,mode=755"),
    ]


def test_readonly_paths_are_bound_onto_themselves_and_remounted_ro(
    recording_system: Any,
) -> None:
    recording_system.files["/proc/sys"] = "dir"
    ReadonlyPath("/proc/sys").execute(recording_system)
    ReadonlyPath("/proc/absent").execute(recording_system)
    flags = [m[4] for m in recording_system.mounts()]
    assert flags == [c.MS_BIND | c.MS_REC, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_REC]


def test_pivot_root_detaches_the_old_root(recording_system: Any) -> None:
    PivotRoot("/b/rootfs").execute(recording_system)
    assert recording_system.calls == [
        ("open_dir", "/"),
        ("chdir", "/b/rootfs"),
        ("pivot_root", ".", "."),
        ("fchdir", 100),
        ("mount", None, ".", None, c.MS_SLAVE | c.MS_REC, None),
        ("umount", ".", c.MNT_DETACH),
        ("close", 100),
        ("chdir", "/"),
    ]


def test_the_cgroup_mount_binds_only_the_container_directories(recording_system: Any) -> None:
    from reference_runtime.spec.model import Mount

    mount = Mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro"])
    sources = {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/ctr", "pids": "/sys/fs/cgroup/pids/ctr"}
    CgroupMount("/r", mount, c.MS_RDONLY, sources, cgroup2=False).execute(recording_system)
    binds = [m for m in recording_system.mounts() if m[1] and m[1].startswith("/sys/fs/cgroup/")]
    assert [(m[1], m[2]) for m in binds] == [
        ("/sys/fs/cgroup/cpu,cpuacct/ctr", "/r/sys/fs/cgroup/cpu,cpuacct"),
        ("/sys/fs/cgroup/pids/ctr", "/r/sys/fs/cgroup/pids"),
    ]
    links = [call[1:] for call in recording_system.calls if call[0] == "symlink"]
    assert links == [("cpu,cpuacct", "/r/sys/fs/cgroup/cpu"),
                     ("cpu,cpuacct", "/r/sys/fs/cgroup/cpuacct")]  # fmt: skip


# --- options ------------------------------------------------------------------------------


def test_options_split_into_flags_propagation_and_data() -> None:
    opts = parse_options(["nosuid", "rw", "ro", "noexec", "rshared", "size=1m", "tmpcopyup"])
    assert opts.flags == c.MS_NOSUID | c.MS_RDONLY | c.MS_NOEXEC
    assert opts.propagation == [c.MS_SHARED | c.MS_REC]
    assert opts.data == ["size=1m"]
    assert not opts.bind
    later_wins = parse_options(["ro", "rw"])
    assert later_wins.flags == 0
    bind = parse_options(["rbind"], "none")
    assert bind.bind and bind.recursive


# --- paths inside the root ------------------------------------------------------------------


def _tree(tmp_path: Any) -> str:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "abs").symlink_to("/etc")  # absolute: means the rootfs's /etc
    (root / "up").symlink_to("../../../../..")  # climbs above the rootfs
    (root / "rel").symlink_to("data/sub")
    (root / "loop").symlink_to("loop")
    return str(root)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/x", "/etc/x"),
        ("/abs/passwd", "/etc/passwd"),
        ("/up/etc/shadow", "/etc/shadow"),
        ("/../../etc", "/etc"),
        ("/rel/file", "/data/sub/file"),
        ("/", ""),
    ],
)
def test_container_paths_never_resolve_outside_the_rootfs(
    tmp_path: Any, path: str, expected: str
) -> None:
    from reference_runtime.linux.system import System

    root = _tree(tmp_path)
    assert resolve_in_root(root, path, System().readlink) == root + expected


def test_a_symlink_loop_is_an_error(tmp_path: Any) -> None:
    from reference_runtime.linux.system import System

    with pytest.raises(SpecError, match="too many levels"):
        resolve_in_root(_tree(tmp_path), "/loop/x", System().readlink)


@pytest.mark.parametrize("propagation", ["shared", "private", "unbindable", "rslave"])
def test_root_propagation_is_applied_to_the_new_root_after_pivot(
    make_config: Any, bundle: str, propagation: str
) -> None:
    from reference_runtime.rootfs.options import PROPAGATION

    raw = make_config()
    raw["linux"]["rootfsPropagation"] = propagation
    steps = plan_rootfs(load(raw, bundle), {}, cgroup2=False)
    # first a slave, always: a shared root breaks pivot_root, an unbindable one the bind
    assert steps[0].describe() == SetPropagation("/", c.MS_SLAVE | c.MS_REC).describe()
    pivot = next(i for i, s in enumerate(steps) if isinstance(s, PivotRoot))
    after = steps[pivot + 1]
    assert isinstance(after, SetPropagation)
    assert (after.target, after.flags) == ("/", PROPAGATION[propagation])


def test_no_pivot_moves_the_root_and_chroots(
    make_config: Any, bundle: str, recording_system: Any
) -> None:
    from reference_runtime.rootfs.plan import MoveRoot

    steps = plan_rootfs(load(make_config(), bundle), {}, cgroup2=False, no_pivot=True)
    move = next(s for s in steps if isinstance(s, PivotRoot))
    assert isinstance(move, MoveRoot)
    move.execute(recording_system)
    root = os.path.join(bundle, "rootfs")
    assert recording_system.calls == [
        ("chdir", root),
        ("mount", root, "/", None, c.MS_MOVE, None),
        ("chroot", "."),
        ("chdir", "/"),
    ]


def test_sysctl_is_written_after_pivot_and_before_readonly_paths(
    make_config: Any, bundle: str
) -> None:
    from reference_runtime.rootfs.plan import Sysctl

    raw = make_config()
    raw["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    steps = plan_rootfs(load(raw, bundle), {}, cgroup2=False)
    kinds = [type(s) for s in steps]
    assert kinds.index(PivotRoot) < kinds.index(Sysctl) < kinds.index(ReadonlyPath)
    recorder = type(
        "R", (), {"calls": [], "write_procfs": lambda self, p, v: self.calls.append((p, v))}
    )()
    steps[kinds.index(Sysctl)].execute(recorder)
    assert recorder.calls == [("/proc/sys/net/ipv4/ip_forward", "1")]


def test_in_a_user_namespace_devices_are_bound_not_made(make_config: Any, bundle: str) -> None:
    from reference_runtime.rootfs.plan import BindDevice

    raw = make_config()
    raw["linux"]["namespaces"].append({"type": "user"})
    raw["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    raw["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    steps = plan_rootfs(load(raw, bundle), {}, cgroup2=False)
    assert not any(isinstance(s, MakeDevice) for s in steps)  # mknod(2) is refused there
    binds = [s for s in steps if isinstance(s, BindDevice)]
    assert [(b.host_path, b.path) for b in binds][:2] == [
        ("/dev/null", "/dev/null"),
        ("/dev/zero", "/dev/zero"),
    ]


def test_on_cgroup_v2_without_a_cgroup_namespace_the_own_directory_is_bound(
    recording_system: Any,
) -> None:
    from reference_runtime.spec.model import Mount

    mount = Mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro"])
    own = {"": "/sys/fs/cgroup/ctr"}
    CgroupMount("/r", mount, c.MS_RDONLY, own, cgroup2=True).execute(recording_system)
    assert recording_system.mounts() == [
        ("mount", "/sys/fs/cgroup/ctr", "/r/sys/fs/cgroup", None, c.MS_BIND | c.MS_REC, None),
        ("mount", None, "/r/sys/fs/cgroup", None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY, None),
    ]
    recording_system.calls.clear()
    CgroupMount("/r", mount, c.MS_RDONLY, {}, cgroup2=True).execute(recording_system)
    assert recording_system.mounts() == [
        ("mount", "cgroup2", "/r/sys/fs/cgroup", "cgroup2", c.MS_RDONLY, None)
    ]


def test_recursive_options_become_mount_setattr_attributes() -> None:
    opts = parse_options(["rbind", "rro", "rnosuid", "rnoatime", "rsuid"])
    assert opts.attr_set == c.MOUNT_ATTR_RDONLY | c.MOUNT_ATTR_NOATIME
    # the later rsuid undoes rnosuid; an atime mode clears the whole atime field first
    assert opts.attr_clr == c.MOUNT_ATTR_NOSUID | c.MOUNT_ATTR__ATIME
    assert opts.data == []  # never passed to mount(2) as filesystem data


def test_a_recursive_read_only_bind_applies_to_the_whole_tree(
    make_config: Any, bundle: str, recording_system: Any
) -> None:
    raw = make_config()
    raw["mounts"] = [{"destination": "/srv/tree", "type": "bind", "source": "/srv",
                      "options": ["rbind", "rro"]}]  # fmt: skip
    step = next(s for s in plan_rootfs(load(raw, bundle), {}, False) if isinstance(s, MountStep))
    recording_system.files["/srv"] = "dir"
    step.execute(recording_system)
    target = os.path.join(bundle, "rootfs") + "/srv/tree"
    assert recording_system.calls[-1] == ("mount_setattr", target, c.MOUNT_ATTR_RDONLY, 0)


def test_a_device_over_a_file_that_is_not_it_is_an_error(recording_system: Any) -> None:
    # config-linux.md "Devices": a file at the path that does not match the device.
    recording_system.files.update({"/r": "dir", "/r/dev": "dir", "/r/dev/x": "file"})
    step = MakeDevice("/r", "/dev/x", "c", 10, 229, 0o640, 0, 0)
    with pytest.raises(SpecError, match="not the c 10:229 device"):
        step.execute(recording_system)
    recording_system.files["/r/dev/x"] = ("dev", 0o020000, 10, 228)  # a char device, wrong minor
    with pytest.raises(SpecError):
        step.execute(recording_system)
    assert not [call for call in recording_system.calls if call[0] in ("mknod", "chmod")]


def test_the_very_device_already_there_is_left_alone(recording_system: Any) -> None:
    recording_system.files.update({"/r": "dir", "/r/dev": "dir"})
    recording_system.files["/r/dev/x"] = ("dev", 0o020000, 10, 229)
    MakeDevice("/r", "/dev/x", "c", 10, 229, 0o640, 0, 0).execute(recording_system)
    assert recording_system.calls == []


def test_a_dev_symlink_left_in_the_rootfs_is_not_followed(recording_system: Any) -> None:
    # An earlier failed create left /dev/stdout -> /proc/self/fd/1 in a rootfs without /proc.
    recording_system.files.update({"/r": "dir", "/r/dev": "dir"})
    recording_system.files["/r/dev/stdout"] = ("link", "/proc/self/fd/1")
    Symlink("/r", "/proc/self/fd/1", "/dev/stdout").execute(recording_system)
    assert recording_system.calls == [("symlink", "/proc/self/fd/1", "/r/dev/stdout")]


def test_a_bind_with_remount_changes_the_mount_already_there(
    recording_system: Any, bundle: str
) -> None:
    # config.md "remount": the entry remounts what is at the destination; it binds nothing.
    from reference_runtime.spec.model import Mount

    root = os.path.join(bundle, "rootfs")
    recording_system.files.update({"/host/src": "dir", root: "dir", root + "/srv": "dir",
                                   root + "/srv/re": "dir"})  # fmt: skip
    mount = Mount("/srv/re", "bind", "/host/src", ["bind", "remount", "ro"])
    MountStep(root, mount, parse_options(mount.options, mount.type), "/host/src").execute(
        recording_system
    )
    assert recording_system.mounts() == [
        ("mount", None, root + "/srv/re", None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY, None)
    ]


def test_defaults_and_iversion_are_flags_not_filesystem_data() -> None:
    opts = parse_options(["defaults", "iversion", "noiversion", "silent", "size=1m"], "tmpfs")
    assert opts.data == ["size=1m"]
    assert opts.flags == c.MS_SILENT
