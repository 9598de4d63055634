"""The Linux mount options (config.md "Mounts", its table of Linux mount options; mount(8),
mount(2), mount_namespaces(7)).

Each option is judged by what the kernel shows in the container's own /proc/self/mountinfo: the
per-mount options (field 6: ro/rw, nosuid, nodev, noexec, the atime mode, nosymfollow), the
superblock options (field 11: sync, dirsync, lazytime and the filesystem's data such as size=
and mode=) and the propagation tags (shared:N, master:N, unbindable). Where the option changes
what a process can do, the behaviour is checked too: noexec refuses exec with EACCES, nosuid
leaves the euid alone, nodev refuses opening a device node, ro refuses writes with EROFS.

The options are tried on a fresh tmpfs: tmpfs refuses any data it does not know (EINVAL), so a
runtime that does not know an option, and hands it to the filesystem as data, fails the mount;
an option that only clears a flag is then still seen to be understood. Every "lacks" claim sits
next to a control mount, in the same container, that shows the flag the claim is about.

Propagation needs a mount that propagates: the host's mounts here are all private, so the tests
make their own shared tmpfs tree (a directory with a submount) in the test's directory and bind
it into the container; a slave there receives what the host mounts under it afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.containers import Container, ContainerFactory
from bulkhead.spec import Mount
from conformance._mounts import (
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_STRICTATIME,
    PRINT_MOUNTINFO,
    MountEntry,
    bind,
    fields,
    host_mounts,
    host_tree,
    mount_at,
    mounted,
    run_with,
    split_output,
    tmpfs,
    top_mount,
    with_mounts,
)
from conformance._support import (
    WAIT_FOREVER,
    expect_refusal,
    expect_success,
    grant,
    sh,
    wait_ready,
)

# --- each option of the table on a fresh tmpfs ---------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """What one option does to a fresh tmpfs, as mountinfo shows it; ``control`` is an option
    whose mount shows every flag this one must lack (so the probe is shown to see them)."""

    shows: frozenset[str] = frozenset()  # per-mount options present
    lacks: frozenset[str] = frozenset()  # per-mount options absent
    super_shows: frozenset[str] = frozenset()
    super_lacks: frozenset[str] = frozenset()
    control: tuple[str, ...] = ()
    before: tuple[str, ...] = ()  # options listed before it (norelatime needs strictatime)


def _effect(
    shows: str = "",
    lacks: str = "",
    super_shows: str = "",
    super_lacks: str = "",
    control: str = "",
    before: str = "",
) -> Effect:
    def words(text: str) -> frozenset[str]:
        return frozenset(text.split())

    return Effect(
        words(shows),
        words(lacks),
        words(super_shows),
        words(super_lacks),
        tuple(control.split()),
        tuple(before.split()),
    )


# option -> (requirement id, effect). The kernel's default for a new mount is rw, suid, dev,
# exec, relatime, async (mount(2) "MS_RELATIME": the default since Linux 2.6.30); strictatime
# shows as neither relatime nor noatime; norelatime alone changes nothing on a new mount, so it
# is given after strictatime (mount(8): "See also the strictatime mount option"); iversion,
# silent and loud show nowhere for tmpfs: that tmpfs accepts the mount is what can be seen.
OPTIONS: dict[str, tuple[str, Effect]] = {
    "async": ("config.linux-mount-options.1", _effect(super_lacks="sync", control="sync")),
    "atime": ("config.linux-mount-options.2", _effect(lacks="noatime", control="noatime")),
    "defaults": (
        "config.linux-mount-options.4",
        _effect(shows="rw", lacks="ro nosuid nodev noexec", control="ro nosuid nodev noexec"),
    ),
    "dev": ("config.linux-mount-options.5", _effect(lacks="nodev", control="nodev")),
    "diratime": ("config.linux-mount-options.6", _effect(lacks="nodiratime", control="nodiratime")),
    "dirsync": ("config.linux-mount-options.7", _effect(super_shows="dirsync")),
    "exec": ("config.linux-mount-options.8", _effect(lacks="noexec", control="noexec")),
    "iversion": ("config.linux-mount-options.9", _effect()),
    "lazytime": ("config.linux-mount-options.10", _effect(super_shows="lazytime")),
    "loud": ("config.linux-mount-options.11", _effect()),
    "noatime": ("config.linux-mount-options.13", _effect(shows="noatime", lacks="relatime")),
    "nodev": ("config.linux-mount-options.14", _effect(shows="nodev")),
    "nodiratime": ("config.linux-mount-options.15", _effect(shows="nodiratime")),
    "noexec": ("config.linux-mount-options.16", _effect(shows="noexec")),
    "noiversion": ("config.linux-mount-options.17", _effect()),
    "nolazytime": (
        "config.linux-mount-options.18",
        _effect(super_lacks="lazytime", control="lazytime"),
    ),
    "norelatime": (
        "config.linux-mount-options.20",
        _effect(lacks="relatime noatime", control="relatime", before="strictatime"),
    ),
    "nostrictatime": ("config.linux-mount-options.21", _effect(shows="relatime")),
    "nosuid": ("config.linux-mount-options.22", _effect(shows="nosuid")),
    "relatime": ("config.linux-mount-options.29", _effect(shows="relatime", lacks="noatime")),
    "ro": ("config.linux-mount-options.39", _effect(shows="ro", lacks="rw")),
    "rw": ("config.linux-mount-options.50", _effect(shows="rw", lacks="ro", control="ro")),
    "silent": ("config.linux-mount-options.52", _effect()),
    "strictatime": (
        "config.linux-mount-options.54",
        _effect(lacks="relatime noatime", control="relatime noatime"),
    ),
    "suid": ("config.linux-mount-options.55", _effect(lacks="nosuid", control="nosuid")),
    "sync": ("config.linux-mount-options.57", _effect(super_shows="sync")),
}


def _option_cases() -> list[object]:
    return [
        pytest.param(
            option, effect, id=option, marks=pytest.mark.spec(req, "config.mounts.apply-mounts")
        )
        for option, (req, effect) in OPTIONS.items()
    ]


# Each case names its option's id too (pytest.param marks above).
@pytest.mark.spec("config.mounts.apply-mounts")
@pytest.mark.parametrize(("option", "effect"), _option_cases())
def test_a_mount_option_shows_in_mountinfo(
    containers: ContainerFactory, option: str, effect: Effect
) -> None:
    mounts = [tmpfs("/srv/option", *effect.before, option)]
    if effect.control:
        # Separate mounts (the option itself must be able to clear what a control sets):
        # one per control option, each of which must show the flag it is the control for.
        mounts += [tmpfs(f"/srv/control-{c}", c) for c in effect.control]
    _, table = run_with(containers, "", *mounts)
    seen = mount_at(table, "/srv/option")
    assert seen.fstype == "tmpfs", seen
    problems = [f"mountinfo lacks {o}" for o in sorted(effect.shows - seen.options)]
    problems += [f"mountinfo shows {o}" for o in sorted(effect.lacks & seen.options)]
    problems += [f"super options lack {o}" for o in sorted(effect.super_shows - seen.super_options)]
    problems += [f"super options show {o}" for o in sorted(effect.super_lacks & seen.super_options)]
    assert not problems, f"tmpfs with {[*effect.before, option]}: {'; '.join(problems)} ({seen})"
    for c in effect.control:
        ctl = mount_at(table, f"/srv/control-{c}")
        assert c in ctl.options | ctl.super_options, f"the control {c} shows nowhere: {ctl}"


@pytest.mark.spec("config.linux-mount-options.78", "config.mounts.apply-mounts")
def test_other_options_are_handed_to_the_filesystem(containers: ContainerFactory) -> None:
    # size and mode are tmpfs's own (tmpfs(5)): mountinfo's super options show them as the
    # kernel parsed them, and the mount's root has the mode.
    spec = containers.spec()
    mount = Mount(
        destination="/srv/data", type="tmpfs", source="tmpfs", options=["size=1m", "mode=710"]
    )
    lines, table = run_with(containers, "stat -c %a /srv/data", mount, spec=spec)
    seen = mount_at(table, "/srv/data")
    assert {"size=1024k", "mode=710"} <= seen.super_options, seen
    assert lines == ["710"], lines


@pytest.mark.spec("config.linux-mount-options.78")
def test_an_option_the_filesystem_does_not_know_fails_the_mount(
    containers: ContainerFactory,
) -> None:
    # What makes the accept-only options above observable: tmpfs refuses data it does not know,
    # so an option a runtime hands on as data fails the container.
    for options, accepted in (
        (["size=64k"], True),
        (["size=64k", "bulkhead-no-such-option"], False),
    ):
        spec = containers.spec(["true"])
        with_mounts(
            spec, Mount(destination="/srv/t", type="tmpfs", source="tmpfs", options=options)
        )
        with containers.bundle(spec) as (cid, bundle):
            call = containers.client.run(cid, bundle.path, check=False)
        if accepted:
            expect_success(call, "a tmpfs with size=64k")
        else:
            expect_refusal(call, "a tmpfs with an option tmpfs does not know")


# Flag options by group, at most one of each drawn: the kernel's per-mount options for a new
# mount follow from them alone (the atime group decides the atime mode, see OPTIONS).
_GROUPS = (
    ("ro", "rw"),
    ("nosuid", "suid"),
    ("nodev", "dev"),
    ("noexec", "exec"),
    ("nodiratime", "diratime"),
    ("noatime", "atime", "relatime", "strictatime", "nostrictatime"),
    ("sync", "async"),
    ("lazytime", "nolazytime"),
    ("dirsync",),
)


def expected_options(chosen: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The per-mount options a new mount with ``chosen`` shows, and its superblock flags."""
    shown = {"ro" if "ro" in chosen else "rw"}
    shown |= {o for o in ("nosuid", "nodev", "noexec", "nodiratime") if o in chosen}
    if "noatime" in chosen:
        shown.add("noatime")
    elif "strictatime" not in chosen:
        shown.add("relatime")
    return frozenset(shown), frozenset(o for o in ("sync", "dirsync", "lazytime") if o in chosen)


@st.composite
def flag_options(draw: st.DrawFn) -> list[str]:
    chosen = [draw(st.sampled_from(g)) for g in _GROUPS if draw(st.booleans())]
    return draw(st.permutations(chosen))


@pytest.mark.spec(
    "config.mounts.apply-mounts",
    "config.linux-mount-options.39",
    "config.linux-mount-options.22",
    "config.linux-mount-options.14",
    "config.linux-mount-options.16",
    "config.linux-mount-options.13",
    "config.linux-mount-options.54",
    "config.linux-mount-options.57",
    "config.linux-mount-options.10",
)
@given(options=flag_options())
def test_flag_options_combine(containers: ContainerFactory, options: list[str]) -> None:
    _, table = run_with(containers, "", tmpfs("/srv/flags", *options))
    seen = mount_at(table, "/srv/flags")
    shown, sb_flags = expected_options(options)
    assert seen.options == shown, f"{options}: mountinfo shows {sorted(seen.options)}"
    sb_seen = seen.super_options & {"sync", "dirsync", "lazytime"}
    assert sb_seen == sb_flags, f"{options}: super options {sorted(seen.super_options)}"


# --- what the options do to a process -----------------------------------------------------------


@pytest.mark.spec("config.linux-mount-options.16", "config.linux-mount-options.8")
def test_noexec_refuses_exec_where_exec_runs(containers: ContainerFactory) -> None:
    # The same copy of busybox on two tmpfs mounts (mode 1777, a copy keeps mode 755): only the
    # option can make the kernel refuse execve(2) with EACCES ("Permission denied" from sh).
    script = (
        "for d in noexec exec; do cp /bin/busybox /srv/$d/busybox; "
        '/srv/$d/busybox true 2>/tmp/err; echo "$d $? $(cat /tmp/err)"; done'
    )
    lines, table = run_with(
        containers, script, tmpfs("/srv/noexec", "noexec"), tmpfs("/srv/exec", "exec")
    )
    ran = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines}
    assert ran["exec"] == ["0"], f"busybox did not run from the exec mount: {ran['exec']}"
    code, *message = ran["noexec"]
    assert code == "126" and "Permission denied" in " ".join(message), ran["noexec"]
    assert "noexec" in mount_at(table, "/srv/noexec").options
    assert "noexec" not in mount_at(table, "/srv/exec").options


@pytest.mark.spec("config.linux-mount-options.22", "config.linux-mount-options.55")
def test_nosuid_ignores_the_setuid_bit_where_suid_honours_it(containers: ContainerFactory) -> None:
    # A setuid-1234 copy of busybox run by root: euid 1234 where the bit counts (suid), 0 where
    # the mount says nosuid. no_new_privs would ignore the bit everywhere, so it is off here.
    script = (
        "for d in nosuid suid; do cp /bin/busybox /srv/$d/busybox && "
        "chown 1234 /srv/$d/busybox && chmod 4755 /srv/$d/busybox && "
        'echo "$d $(/srv/$d/busybox id -u)"; done'
    )
    spec = grant(containers.spec(), "CAP_CHOWN", "CAP_FOWNER")
    assert spec.process is not None
    spec.process.no_new_privileges = False
    lines, table = run_with(
        containers,
        script,
        tmpfs("/srv/nosuid", "nosuid"),
        tmpfs("/srv/suid", "suid"),
        spec=spec,
    )
    assert sorted(lines) == ["nosuid 0", "suid 1234"], lines
    assert "nosuid" in mount_at(table, "/srv/nosuid").options
    assert "nosuid" not in mount_at(table, "/srv/suid").options


@pytest.mark.spec("config.linux-mount-options.14", "config.linux-mount-options.5")
def test_nodev_refuses_opening_a_device_where_dev_allows_it(containers: ContainerFactory) -> None:
    # A node for /dev/null (1:3, a default device, so the device cgroup allows it) made on each
    # mount: opening it is refused with EACCES only on the nodev one.
    script = (
        "for d in nodev dev; do mknod /srv/$d/null c 1 3 && chmod 666 /srv/$d/null && "
        'echo "$d $(bulkhead-probe read /srv/$d/null)"; done'
    )
    spec = grant(containers.spec(), "CAP_MKNOD")
    lines, table = run_with(
        containers, script, tmpfs("/srv/nodev", "nodev"), tmpfs("/srv/dev", "dev"), spec=spec
    )
    seen = {line.split()[0]: fields(line) for line in lines}
    assert seen.get("nodev") == {"result": "error", "errno": "EACCES"}, lines
    assert seen.get("dev") == {"result": "file", "bytes": "0"}, lines
    assert "nodev" in mount_at(table, "/srv/nodev").options
    assert "nodev" not in mount_at(table, "/srv/dev").options


@pytest.mark.spec("config.linux-mount-options.39", "config.linux-mount-options.50")
def test_ro_refuses_writes_where_rw_accepts_them(containers: ContainerFactory) -> None:
    # A fresh tmpfs is mode 1777: only the mount's read-only flag can refuse root's create.
    script = 'for d in ro rw; do echo "$d $(bulkhead-probe create /srv/$d/new)"; done'
    lines, table = run_with(containers, script, tmpfs("/srv/ro", "ro"), tmpfs("/srv/rw", "rw"))
    seen = {line.split()[0]: fields(line) for line in lines}
    assert seen.get("ro") == {"result": "error", "errno": "EROFS"}, lines
    assert seen.get("rw") == {"result": "ok"}, lines
    assert mount_at(table, "/srv/ro").readonly
    assert not mount_at(table, "/srv/rw").readonly


# --- the recursive options, on an rbind of a tree with a submount --------------------------------

# option -> (requirement id, flags the host tree is given first, shown on both, absent on both).
# config.md: "Recursive ..." applies to every mount of the bind (mount_setattr(2) AT_RECURSIVE);
# a clearing option is tried on a tree whose mounts carry the flag, which its rbind inherits.
# rnorelatime is left out: relatime is what a mount gets whenever neither noatime nor
# strictatime is asked for (mount(2) "MS_RELATIME"), so clearing it can show nothing.
RECURSIVE = {
    "rro": ("config.linux-mount-options.42", 0, "ro", ""),
    "rrw": ("config.linux-mount-options.43", MS_RDONLY, "rw", "ro"),
    "rnosuid": ("config.linux-mount-options.37", 0, "nosuid", ""),
    "rsuid": ("config.linux-mount-options.47", MS_NOSUID, "", "nosuid"),
    "rnodev": ("config.linux-mount-options.27", 0, "nodev", ""),
    "rdev": ("config.linux-mount-options.27", MS_NODEV, "", "nodev"),
    "rnoexec": ("config.linux-mount-options.34", 0, "noexec", ""),
    "rexec": ("config.linux-mount-options.31", MS_NOEXEC, "", "noexec"),
    "rnodiratime": ("config.linux-mount-options.33", 0, "nodiratime", ""),
    "rdiratime": ("config.linux-mount-options.28", MS_NODIRATIME, "", "nodiratime"),
    "rnoatime": ("config.linux-mount-options.32", 0, "noatime", "relatime"),
    "ratime": ("config.linux-mount-options.25", MS_NOATIME, "", "noatime"),
    "rrelatime": ("config.linux-mount-options.41", MS_NOATIME, "relatime", "noatime"),
    "rstrictatime": ("config.linux-mount-options.46", 0, "", "relatime noatime"),
    "rnostrictatime": ("config.linux-mount-options.36", MS_STRICTATIME, "relatime", ""),
    "rnosymfollow": ("config.linux-mount-options.38", 0, "nosymfollow", ""),
    "rsymfollow": ("config.linux-mount-options.48", MS_NOSYMFOLLOW, "", "nosymfollow"),
}


def _recursive_cases() -> list[object]:
    return [
        pytest.param(
            option,
            flags,
            shows,
            lacks,
            id=option,
            marks=pytest.mark.spec(req, "config.linux-mount-options.26"),
        )
        for option, (req, flags, shows, lacks) in RECURSIVE.items()
    ]


# Each case names its option's id too (pytest.param marks above).
@pytest.mark.spec("config.linux-mount-options.26")
@pytest.mark.parametrize(("option", "flags", "shows", "lacks"), _recursive_cases())
def test_a_recursive_option_reaches_the_submounts(
    containers: ContainerFactory, tmp_path: Path, option: str, flags: int, shows: str, lacks: str
) -> None:
    # The control is the host's own view of the tree: its two mounts must miss what the option
    # is to bring (else the tree would look right without it). A plain rbind is no control:
    # runtimes may remount a bind's top without the source's flags.
    with host_tree(tmp_path, flags=flags) as tree:
        mine = host_mounts()
        source = [top_mount(mine, str(p)) for p in (tree, tree / "sub")]
        _, table = run_with(containers, "", bind("/srv/r", tree, "rbind", option))

    def misses(entry: MountEntry) -> list[str]:
        return [f"lacks {o}" for o in shows.split() if o not in entry.options] + [
            f"shows {o}" for o in lacks.split() if o in entry.options
        ]

    for entry in source:
        assert entry is not None and misses(entry), f"the tree already looks right: {entry}"
    problems = [
        f"/srv/r{sub} {m}" for sub in ("", "/sub") for m in misses(mount_at(table, "/srv/r" + sub))
    ]
    assert not problems, f"rbind with {option}: " + "; ".join(problems)


# --- propagation, on binds of a shared tree the test makes on the host ---------------------------


def tags_of(entry: MountEntry) -> set[str]:
    return {t.partition(":")[0] for t in entry.tags}


@contextlib.contextmanager
def shared_tree(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """The shared host tree and the peer groups of its two mounts, as the host's mountinfo
    names them."""
    with host_tree(tmp_path, shared=True) as tree:
        mine = host_mounts()
        groups = [top_mount(mine, str(p)) for p in (tree, tree / "sub")]
        assert all(g is not None and g.tag("shared") for g in groups), groups
        yield tree, str(groups[0].tag("shared")), str(groups[1].tag("shared"))  # type: ignore[union-attr]


@pytest.mark.spec("config.linux-mount-options.24", "config.linux-mount-options.3")
def test_private_gives_a_bind_no_propagation(containers: ContainerFactory, tmp_path: Path) -> None:
    # The control: the same source bound as a slave carries its master's tag (the probe sees
    # tags, and the source propagates); "private" takes every tag away.
    with shared_tree(tmp_path) as (tree, group, _):
        _, table = run_with(
            containers,
            "",
            bind("/srv/slave", tree, "bind", "slave"),
            bind("/srv/private", tree, "bind", "private"),
        )
    assert mount_at(table, "/srv/slave").tag("master") == group, mount_at(table, "/srv/slave")
    private = mount_at(table, "/srv/private")
    assert not private.tags, f"a private bind carries {private.tags}"


@pytest.mark.spec("config.linux-mount-options.40", "config.linux-mount-options.26")
def test_rprivate_gives_an_rbind_and_its_submounts_no_propagation(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    with shared_tree(tmp_path) as (tree, group, sub_group):
        _, table = run_with(
            containers,
            "",
            bind("/srv/slave", tree, "rbind", "rslave"),
            bind("/srv/private", tree, "rbind", "rprivate"),
        )
    assert mount_at(table, "/srv/slave").tag("master") == group, table
    assert mount_at(table, "/srv/slave/sub").tag("master") == sub_group, table
    for point in ("/srv/private", "/srv/private/sub"):
        assert not mount_at(table, point).tags, f"{point}: {mount_at(table, point)}"


@pytest.mark.spec("config.linux-mount-options.51")
def test_shared_makes_a_bind_a_peer_group(containers: ContainerFactory, tmp_path: Path) -> None:
    with shared_tree(tmp_path) as (tree, _, _):
        _, table = run_with(containers, "", bind("/srv/shared", tree, "bind", "shared"))
    seen = mount_at(table, "/srv/shared")
    assert seen.tag("shared"), f"a shared bind shows {seen.tags or 'no tags'}"


@pytest.mark.spec("config.linux-mount-options.44", "config.linux-mount-options.26")
def test_rshared_makes_an_rbind_and_its_submounts_peer_groups(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    with shared_tree(tmp_path) as (tree, _, _):
        _, table = run_with(containers, "", bind("/srv/shared", tree, "rbind", "rshared"))
    for point in ("/srv/shared", "/srv/shared/sub"):
        seen = mount_at(table, point)
        assert seen.tag("shared"), f"{point} shows {seen.tags or 'no tags'}"


@pytest.mark.spec("config.linux-mount-options.59", "config.linux-mount-options.3")
def test_unbindable_makes_a_bind_unbindable(containers: ContainerFactory, tmp_path: Path) -> None:
    with shared_tree(tmp_path) as (tree, _, _):
        _, table = run_with(containers, "", bind("/srv/unbindable", tree, "bind", "unbindable"))
    seen = mount_at(table, "/srv/unbindable")
    assert seen.tag("unbindable"), f"an unbindable bind shows {seen.tags or 'no tags'}"


@pytest.mark.spec("config.linux-mount-options.49", "config.linux-mount-options.26")
def test_runbindable_makes_an_rbind_and_its_submounts_unbindable(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    with shared_tree(tmp_path) as (tree, _, _):
        _, table = run_with(containers, "", bind("/srv/unbindable", tree, "rbind", "runbindable"))
    for point in ("/srv/unbindable", "/srv/unbindable/sub"):
        seen = mount_at(table, point)
        assert seen.tag("unbindable"), f"{point} shows {seen.tags or 'no tags'}"


@contextlib.contextmanager
def running_with(containers: ContainerFactory, *mounts: Mount) -> Iterator[Container]:
    spec = with_mounts(containers.spec(sh(WAIT_FOREVER)), *mounts)
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        yield ctr


def table_of(ctr: Container) -> list[MountEntry]:
    result = ctr.exec("sh", "-c", PRINT_MOUNTINFO)
    assert result.exit_code == 0, result.stderr
    return split_output(result.stdout)[1]


@pytest.mark.spec("config.linux-mount-options.53", "config.linux-mount-options.45")
@pytest.mark.parametrize("recursive", [False, True], ids=["slave", "rslave"])
def test_a_slave_bind_receives_what_the_host_mounts_under_its_source(
    containers: ContainerFactory, tmp_path: Path, recursive: bool
) -> None:
    option = "rslave" if recursive else "slave"
    with shared_tree(tmp_path) as (tree, group, sub_group):
        mount = bind("/srv/slave", tree, "rbind" if recursive else "bind", option)
        with running_with(containers, mount) as ctr:
            before = table_of(ctr)
            # Made on the host after start, under the source: only propagation brings it in.
            made = tree / "sub" / "made" if recursive else tree / "made"
            with mounted("bulkhead-made", made, "tmpfs", "size=64k"):
                after = table_of(ctr)
    seen = mount_at(before, "/srv/slave")
    assert seen.tag("master") == group and not seen.tag("shared"), f"{option}: {seen}"
    inside = "/srv/slave/sub/made" if recursive else "/srv/slave/made"
    assert top_mount(before, inside) is None, before
    assert top_mount(after, inside) is not None, f"{option}: the host's new mount is not inside"
    if recursive:
        sub = mount_at(before, "/srv/slave/sub")
        assert sub.tag("master") == sub_group and not sub.tag("shared"), f"{option}: {sub}"
