"""``requires(...)`` names against hand-built host facts; the crun work-around decision; the
cgroup layout probe fed with fake mounts (no real cgroups are read)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bulkhead import host as host_module
from bulkhead.errors import UnknownRequirement, UsageError
from bulkhead.host import CgroupLayout, HostFacts, probe_cgroups
from bulkhead.requirements import CHECKS, unmet
from bulkhead.suite import HIDE_CHOICES, needs_hidden_controllers

HYBRID = CgroupLayout(
    "hybrid",
    v1_controllers=frozenset({"cpu", "memory", "pids"}),
    v2_controllers=frozenset({"hugetlb"}),
    v2_mount=Path("/sys/fs/cgroup/unified"),
)
UNIFIED = CgroupLayout(
    "unified", v2_controllers=frozenset({"cpu", "io", "memory"}), v2_mount=Path("/sys/fs/cgroup")
)
LEGACY = CgroupLayout("legacy", v1_controllers=frozenset({"cpu", "memory"}))

CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24

RICH = HostFacts(
    kernel="6.1.0-test",
    is_root=True,
    cgroups=HYBRID,
    namespaces=frozenset({"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}),
    userns=True,
    overlay=True,
    effective_caps=1 << CAP_SYS_ADMIN,
)
POOR = dataclasses.replace(
    RICH,
    is_root=False,
    cgroups=CgroupLayout("legacy"),
    namespaces=frozenset({"ipc", "mnt", "net", "pid", "uts"}),
    userns=False,
    overlay=False,
    effective_caps=0,
)


def facts(**changes: object) -> HostFacts:
    return dataclasses.replace(RICH, **changes)  # type: ignore[arg-type]


# --- named requirements -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_named_requirement_is_met_on_a_host_that_has_it(name: str) -> None:
    assert unmet([name], RICH) == []


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("root", "effective uid 0"),
        ("overlay", "overlayfs"),
        ("userns", "user namespaces"),
        ("cgroup_v1", "host cgroups are legacy"),
        ("cgroup_v2", "host cgroups are legacy"),
        ("cgroupns", "no cgroup namespace"),
        ("timens", "no time namespace"),
    ],
)
def test_an_unmet_requirement_gives_its_name_and_a_reason(name: str, found: str) -> None:
    [reason] = unmet([name], POOR)
    assert reason.startswith(f"{name}: ")
    assert found in reason


def test_every_named_requirement_has_an_unmet_case_here() -> None:
    assert all(unmet([name], POOR) for name in CHECKS)


def test_cgroup_v1_reason_shows_the_v2_layout_found() -> None:
    [reason] = unmet(["cgroup_v1"], facts(cgroups=UNIFIED))
    assert "unified" in reason and "v2 at /sys/fs/cgroup: cpu,io,memory" in reason


def test_cgroup_v2_is_met_by_a_cgroup2_mount_without_controllers() -> None:
    bare = dataclasses.replace(HYBRID, v2_controllers=frozenset())
    assert unmet(["cgroup_v2"], facts(cgroups=bare)) == []


def test_only_the_unmet_requirements_are_reported_in_order() -> None:
    host = facts(is_root=False, overlay=False)
    reasons = unmet(["overlay", "userns", "root"], host)
    assert [r.split(":")[0] for r in reasons] == ["overlay", "root"]


# --- parametrised requirements -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "controller"),
    [(HYBRID, "memory"), (HYBRID, "hugetlb"), (LEGACY, "memory"), (UNIFIED, "memory")],
    ids=["hybrid-v1", "hybrid-v2", "legacy-v1", "unified-v2"],
)
def test_a_controller_counts_in_either_hierarchy(layout: CgroupLayout, controller: str) -> None:
    assert unmet([f"controller:{controller}"], facts(cgroups=layout)) == []


def test_a_missing_controller_is_named_with_the_layout_found() -> None:
    [reason] = unmet(["controller:rdma"], facts(cgroups=HYBRID))
    assert "'rdma'" in reason
    assert HYBRID.describe() in reason


def test_a_capability_is_met_only_when_its_bit_is_effective() -> None:
    assert unmet([f"cap:{CAP_SYS_ADMIN}"], RICH) == []
    [reason] = unmet([f"cap:{CAP_SYS_RESOURCE}"], RICH)
    assert reason == f"cap:{CAP_SYS_RESOURCE}: capability 24 is not in the effective set"


@pytest.mark.parametrize(
    "name", ["no-such-thing", "Root", "controller:", "cap:", "cap:CAP_SYS_ADMIN", "memory:x"]
)
def test_an_unknown_requirement_raises_and_lists_the_known_names(name: str) -> None:
    with pytest.raises(UnknownRequirement) as info:
        unmet([name], RICH)
    message = str(info.value)
    assert repr(name) in message
    assert all(known in message for known in CHECKS)
    assert "controller:<name>" in message and "cap:<number>" in message


def test_an_unknown_name_raises_even_after_met_ones() -> None:
    with pytest.raises(UnknownRequirement):
        unmet(["root", "no-such-thing"], RICH)


# --- hiding cgroup2 controllers from crun -------------------------------------------------------


@pytest.mark.parametrize(
    ("binary", "layout", "expected"),
    [
        ("/usr/bin/crun", HYBRID, True),
        ("/opt/crun-1.8.1", HYBRID, True),
        ("/usr/sbin/runc", HYBRID, False),
        ("/usr/bin/youki", HYBRID, False),
        ("/usr/bin/crun", dataclasses.replace(HYBRID, v2_controllers=frozenset()), False),
        ("/usr/bin/crun", UNIFIED, False),
        ("/usr/bin/crun", LEGACY, False),
    ],
    ids=[
        "crun-hybrid",
        "crun-versioned-name",
        "runc",
        "youki",
        "crun-empty-v2",
        "crun-unified",
        "crun-legacy",
    ],
)
def test_auto_hides_controllers_only_for_crun_on_a_hybrid_host_with_v2_controllers(
    binary: str, layout: CgroupLayout, expected: bool
) -> None:
    assert needs_hidden_controllers("auto", Path(binary), facts(cgroups=layout)) is expected


@pytest.mark.parametrize("layout", [HYBRID, UNIFIED, LEGACY])
@pytest.mark.parametrize("binary", ["/usr/bin/crun", "/usr/sbin/runc"])
def test_yes_and_no_force_the_choice(layout: CgroupLayout, binary: str) -> None:
    host = facts(cgroups=layout)
    assert needs_hidden_controllers("yes", Path(binary), host) is True
    assert needs_hidden_controllers("no", Path(binary), host) is False


@pytest.mark.parametrize("choice", ["maybe", "", "YES", "true"])
def test_a_bad_choice_is_a_usage_error_listing_the_choices(choice: str) -> None:
    with pytest.raises(UsageError) as info:
        needs_hidden_controllers(choice, Path("/usr/bin/crun"), RICH)
    assert all(c in str(info.value) for c in HIDE_CHOICES)


# --- probing the cgroup layout ------------------------------------------------------------------
# probe_cgroups() reads /proc/self/mountinfo through host._mounts(), whose path is fixed; the
# tests replace _mounts() with (mount point, fstype, super options) rows, so the mountinfo line
# splitting itself is not covered here.


@pytest.fixture
def mounts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = [("/", "ext4", "rw,errors=remount-ro")]
    monkeypatch.setattr(host_module, "_mounts", lambda: rows)
    return rows


def test_probe_sees_a_hybrid_layout(mounts: list[tuple[str, str, str]], tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    mounts += [
        ("/sys/fs/cgroup", "tmpfs", "ro,mode=755"),
        ("/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,name=systemd"),
        (str(tmp_path), "cgroup2", "rw"),
    ]
    assert probe_cgroups() == CgroupLayout(
        "hybrid", frozenset({"memory", "cpu", "cpuacct"}), frozenset({"hugetlb"}), tmp_path
    )


def test_probe_sees_a_unified_layout(mounts: list[tuple[str, str, str]], tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    mounts.append((str(tmp_path), "cgroup2", "rw,nsdelegate,memory_recursiveprot"))
    layout = probe_cgroups()
    assert layout.mode == "unified"
    assert layout.v1_controllers == frozenset()
    assert layout.v2_controllers == {"cpuset", "cpu", "io", "memory", "pids"}


def test_probe_counts_a_named_v1_hierarchy_as_no_controller(
    mounts: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    mounts += [
        (str(tmp_path), "cgroup2", "rw"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,name=systemd"),
    ]
    assert probe_cgroups().mode == "unified"


def test_probe_sees_a_legacy_layout(mounts: list[tuple[str, str, str]]) -> None:
    mounts += [("/sys/fs/cgroup/pids", "cgroup", "rw,relatime,pids")]
    assert probe_cgroups() == CgroupLayout("legacy", frozenset({"pids"}))


def test_probe_takes_the_first_cgroup2_mount(
    mounts: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "cgroup.controllers").write_text("memory\n")
    (second / "cgroup.controllers").write_text("pids\n")
    mounts += [(str(first), "cgroup2", "rw"), (str(second), "cgroup2", "rw")]
    layout = probe_cgroups()
    assert (layout.v2_mount, layout.v2_controllers) == (first, frozenset({"memory"}))


def test_probe_tolerates_an_unreadable_controllers_file(
    mounts: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    mounts.append((str(tmp_path / "gone"), "cgroup2", "rw"))
    layout = probe_cgroups()
    assert (layout.mode, layout.v2_controllers) == ("unified", frozenset())


def test_probe_does_not_take_mount_options_for_controllers(
    mounts: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    # systemd mounts its named hierarchy as "rw,xattr,name=systemd" (and older ones with a
    # release_agent); neither xattr nor release_agent is a controller.
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    mounts += [
        (str(tmp_path), "cgroup2", "rw"),
        (
            "/sys/fs/cgroup/systemd",
            "cgroup",
            "rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd",
        ),
    ]
    assert probe_cgroups() == CgroupLayout("unified", frozenset(), frozenset({"memory"}), tmp_path)
