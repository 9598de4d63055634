"""cgroup resources → files for v1 and v2 from the same config; the managers on a fake tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cgroups.manager import (
    DEFAULT_PARENT,
    Hierarchies,
    V1Manager,
    V2Manager,
    cgroup_path,
    manager_for,
    parse_mountinfo,
)
from reference_runtime.cgroups.mapping import (
    Write,
    device_program,
    shares_to_weight,
    v1_writes,
    v2_writes,
)
from reference_runtime.errors import SpecError, SyscallError

RESOURCES: dict[str, Any] = {
    "pids": {"limit": 64},
    "memory": {"limit": 1 << 28, "reservation": 1 << 27, "swap": 1 << 29},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    "blockIO": {"weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
}  # fmt: skip


def test_v1_files_from_the_config() -> None:
    assert v1_writes(RESOURCES) == [
        Write("pids", "pids.max", "64"),
        Write("memory", "memory.limit_in_bytes", str(1 << 28)),
        Write("memory", "memory.soft_limit_in_bytes", str(1 << 27)),
        Write("memory", "memory.memsw.limit_in_bytes", str(1 << 29)),
        Write("cpu", "cpu.shares", "1024"),
        Write("cpu", "cpu.cfs_period_us", "100000"),
        Write("cpu", "cpu.cfs_quota_us", "50000"),
        Write("cpuset", "cpuset.cpus", "0"),
        Write("cpuset", "cpuset.mems", "0"),
        Write("blkio", "blkio.weight", "500"),
        Write("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
    ]


def test_v2_files_from_the_same_config() -> None:
    assert v2_writes(RESOURCES) == [
        Write("pids", "pids.max", "64"),
        Write("memory", "memory.max", str(1 << 28)),
        Write("memory", "memory.low", str(1 << 27)),
        # v1's memsw counts memory + swap, v2's swap.max only swap
        Write("memory", "memory.swap.max", str((1 << 29) - (1 << 28))),
        Write("cpu", "cpu.weight", str(shares_to_weight(1024))),
        Write("cpu", "cpu.max", "50000 100000"),
        Write("cpuset", "cpuset.cpus", "0"),
        Write("cpuset", "cpuset.mems", "0"),
        Write("io", "io.weight", "500"),
        Write("io", "io.max", "8:0 rbps=1048576"),
    ]


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000)])
def test_cpu_shares_map_linearly_onto_cpu_weight(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_unlimited_values() -> None:
    assert v1_writes({"pids": {"limit": -1}}) == [Write("pids", "pids.max", "max")]
    assert v2_writes({"memory": {"limit": -1}}) == [Write("memory", "memory.max", "max")]
    assert v2_writes({"cpu": {"quota": -1, "period": 1000}}) == [
        Write("cpu", "cpu.max", "max 1000")
    ]


def test_unified_is_v2_only() -> None:
    assert v2_writes({"unified": {"memory.high": "1G"}}) == [Write("memory", "memory.high", "1G")]
    with pytest.raises(SpecError, match="needs cgroup v2"):
        v1_writes({"unified": {"memory.high": "1G"}})


def test_v1_device_rules_keep_the_default_devices_usable() -> None:
    writes = v1_writes({"devices": [{"allow": False, "access": "rwm"}]})
    assert writes[0] == Write("devices", "devices.deny", "a")
    allowed = {w.value for w in writes[1:]}
    assert {"c 1:3 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 136:* rwm"} <= allowed


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_the_host_layout_is_probed_from_mountinfo() -> None:
    hybrid = parse_mountinfo(HYBRID)
    assert hybrid.mode == "hybrid"
    assert hybrid.v1 == {
        "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "pids": "/sys/fs/cgroup/pids",
        "systemd": "/sys/fs/cgroup/systemd",
    }
    assert hybrid.v2 == "/sys/fs/cgroup/unified"
    assert isinstance(manager_for(hybrid, "/x"), V1Manager)
    pure = parse_mountinfo(PURE_V2)
    assert pure.mode == "v2"
    assert isinstance(manager_for(pure, "/x"), V2Manager)


def test_cgroup_paths() -> None:
    assert cgroup_path("/abc", "id") == "/abc"
    assert cgroup_path(None, "id") == f"{DEFAULT_PARENT}/id"
    assert cgroup_path("rel/x", "id") == f"{DEFAULT_PARENT}/rel/x"
    with pytest.raises(SpecError, match="systemd"):
        cgroup_path("system.slice:bh:id", "id")


@pytest.fixture(autouse=True)
def creating_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """cgroupfs makes its interface files itself; in a plain directory, writes create them."""
    import reference_runtime.cgroups.manager as m

    def write(path: str, value: str) -> None:
        Path(path).write_text(value)

    monkeypatch.setattr(m, "_write", write)


def _empty(dirs: list[str]) -> None:
    """A real cgroupfs directory holds no removable files; a plain one must be emptied."""
    for d in dirs:
        for f in Path(d).iterdir():
            if f.is_file():
                f.unlink()


def _v1_tree(tmp_path: Path) -> Hierarchies:
    mounts = {}
    for name in ("cpuset", "pids", "memory"):
        (tmp_path / name).mkdir()
        mounts[name] = str(tmp_path / name)
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return Hierarchies(mounts, None)


def test_v1_manager_creates_limits_and_removes(tmp_path: Path) -> None:
    manager = V1Manager(_v1_tree(tmp_path), "/parent/ctr")
    manager.create({"pids": {"limit": 10}})
    assert (tmp_path / "pids/parent/ctr/pids.max").read_text() == "10"
    # a new v1 cpuset gets its parent's cpus and mems, or it would refuse tasks
    assert (tmp_path / "cpuset/parent/cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset/parent/ctr/cpuset.mems").read_text() == "0"
    made = sorted(manager.dirs)
    assert str(tmp_path / "pids/parent") in made and str(tmp_path / "pids/parent/ctr") in made
    _empty(manager.dirs)
    manager.destroy()
    assert not (tmp_path / "pids/parent").exists()
    assert (tmp_path / "pids").exists()  # what it did not make, it leaves


def test_v1_manager_undoes_itself_when_a_limit_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reference_runtime.cgroups.manager as m

    real = m.remove_dirs

    def emptied_then_removed(dirs: list[str]) -> None:
        _empty(dirs)
        real(dirs)

    monkeypatch.setattr(m, "remove_dirs", emptied_then_removed)
    manager = V1Manager(_v1_tree(tmp_path), "/ctr")
    with pytest.raises(SpecError, match="blkio controller is not mounted"):
        manager.create({"blockIO": {"weight": 10}})
    assert not (tmp_path / "pids/ctr").exists()


def test_v2_manager_delegates_controllers_down_the_path(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    manager = V2Manager(Hierarchies({}, str(tmp_path)), "/a/ctr")

    manager.create({"pids": {"limit": 5}, "memory": {"limit": 1024}})
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "a/cgroup.subtree_control").read_text() == "+memory +pids"
    assert (tmp_path / "a/ctr/pids.max").read_text() == "5"
    assert (tmp_path / "a/ctr/memory.max").read_text() == "1024"


def test_v2_manager_refuses_a_controller_the_host_lacks(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    manager = V2Manager(Hierarchies({}, str(tmp_path)), "/ctr")
    with pytest.raises(SpecError, match="not available here: memory"):
        manager.create({"memory": {"limit": 1024}})
    assert not (tmp_path / "ctr").exists()


def test_cpu_burst_follows_the_quota_and_idle_is_written() -> None:
    cpu = {"cpu": {"quota": 30000, "burst": 20000, "period": 200000, "idle": 1}}
    assert v1_writes(cpu) == [
        Write("cpu", "cpu.cfs_period_us", "200000"),
        Write("cpu", "cpu.cfs_quota_us", "30000"),
        Write("cpu", "cpu.cfs_burst_us", "20000"),
        Write("cpu", "cpu.idle", "1"),
    ]
    assert v2_writes(cpu) == [
        Write("cpu", "cpu.max", "30000 200000"),
        Write("cpu", "cpu.max.burst", "20000"),
        Write("cpu", "cpu.idle", "1"),
    ]


@pytest.mark.parametrize(
    "resources",
    [
        {"cpu": {"realtimeRuntime": 5000}},
        {"memory": {"swappiness": 10}},
        {"memory": {"kernel": 1 << 20}},
        {"memory": {"disableOOMKiller": True}},
        {"blockIO": {"leafWeight": 10}},
    ],
    ids=["realtime", "swappiness", "kernel", "oom-killer", "leaf-weight"],
)
def test_v1_settings_without_a_v2_equivalent_are_refused_on_v2(resources: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="no cgroup v2 equivalent"):
        v2_writes(resources)


def test_v2_device_rules_make_a_program_not_files() -> None:
    allow = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}
    resources = {"devices": [{"allow": False, "access": "rwm"}, allow]}
    assert v2_writes(resources) == []
    code = device_program(resources)
    assert code is not None and len(code) % 8 == 0
    assert device_program({}) is None and device_program({"devices": []}) is None


def test_a_bad_device_rule_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    manager = V2Manager(Hierarchies({}, str(tmp_path)), "/ctr")
    with pytest.raises(SpecError, match=r"devices\[0\]\.access 'x'"):
        manager.create({"devices": [{"allow": True, "type": "c", "access": "x"}]})
    assert not (tmp_path / "ctr").exists()


def test_a_weight_goes_to_the_bfq_file_where_cfq_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reference_runtime.cgroups.manager as m

    (tmp_path / "blkio").mkdir()
    manager = V1Manager(Hierarchies({"blkio": str(tmp_path / "blkio")}, None), "/ctr")
    real_makedirs = m._makedirs

    def makedirs(path: str, made: list[str], hook: Any = None) -> None:
        real_makedirs(path, made, hook)
        Path(path, "blkio.bfq.weight").write_text("100")  # what the kernel offers under BFQ

    monkeypatch.setattr(m, "_makedirs", makedirs)
    manager.create({"blockIO": {"weight": 321}})
    assert (tmp_path / "blkio/ctr/blkio.bfq.weight").read_text() == "321"
    assert not (tmp_path / "blkio/ctr/blkio.weight").exists()


def test_v2_core_files_need_no_controller(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    manager = V2Manager(Hierarchies({}, str(tmp_path)), "/ctr")
    manager.create({"unified": {"cgroup.max.depth": "3"}})
    assert (tmp_path / "ctr/cgroup.max.depth").read_text() == "3"
    assert not (tmp_path / "cgroup.subtree_control").exists()


class _Cfg:
    """The fields delegation_owner reads, as spec/model.py's Config holds them."""

    def __init__(self, kinds: list[str], mounts: list[Any], uid: int = 0) -> None:
        from reference_runtime.spec.model import Namespace, Process

        self.namespaces = [Namespace(kind, None) for kind in kinds]
        self.mounts = mounts
        self.process = Process()
        self.process.uid = uid
        self.process.gid = 0
        self.uid_mappings = [(0, 100000, 65536)]
        self.gid_mappings = [(0, 200000, 65536)]


def _cgroup_mount(*options: str) -> Any:
    from reference_runtime.spec.model import Mount

    return Mount("/sys/fs/cgroup", "cgroup", "cgroup", list(options))


def test_the_cgroup_is_delegated_only_with_userns_cgroupns_and_a_rw_mount() -> None:
    from reference_runtime.cgroups.manager import delegation_owner

    rw = [_cgroup_mount("nosuid", "rw")]
    assert delegation_owner(_Cfg(["user", "cgroup", "mount"], rw, uid=5)) == (100005, 200000)
    assert delegation_owner(_Cfg(["user", "mount"], rw)) is None  # no cgroup namespace
    assert delegation_owner(_Cfg(["cgroup", "mount"], rw)) is None  # no user namespace
    ro = [_cgroup_mount("nosuid", "ro")]
    assert delegation_owner(_Cfg(["user", "cgroup", "mount"], ro)) is None
    assert delegation_owner(_Cfg(["user", "cgroup", "mount"], [])) is None


def test_delegated_files_are_chowned_and_missing_ones_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reference_runtime.cgroups.manager as m

    (tmp_path / "cgroup.procs").write_text("")
    chowned: list[str] = []
    monkeypatch.setattr(os, "chown", lambda p, uid, gid: (
        chowned.append(p) if os.path.exists(p) else (_ for _ in ()).throw(FileNotFoundError(p))
    ))  # fmt: skip
    m.chown_delegated(str(tmp_path), (100000, 100000), ["cgroup.procs", "memory.oom.group"])
    assert chowned == [str(tmp_path), str(tmp_path / "cgroup.procs")]


def test_without_the_delegate_list_the_three_core_files_are_delegated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import reference_runtime.cgroups.manager as m

    monkeypatch.setattr(m, "DELEGATE_LIST", str(tmp_path / "absent"))
    assert m.delegated_files() == ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]


def test_a_made_parent_that_other_cgroups_now_use_is_left_to_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reference_runtime.cgroups.manager as m

    parent, own, other = tmp_path / "parent", tmp_path / "parent/ctr", tmp_path / "parent/other"
    own.mkdir(parents=True)
    other.mkdir()
    real_rmdir = os.rmdir

    def rmdir(path: str) -> None:
        # A cgroup's rmdir: EBUSY while it has children (a plain directory says ENOTEMPTY).
        if any(Path(path).iterdir()):
            raise OSError(16, os.strerror(16), path)
        real_rmdir(path)

    monkeypatch.setattr(os, "rmdir", rmdir)
    m.remove_dirs([str(parent), str(own)], timeout=0.05)
    assert not own.exists() and other.exists()
    # The container's own cgroup is waited for, then reported, when it will not go.
    (own / "child").mkdir(parents=True)
    with pytest.raises(SyscallError, match="rmdir"):
        m.remove_dirs([str(parent), str(own)], timeout=0.05)
