"""User and time namespaces (config-linux.md "Namespaces", "User namespace mappings", "Offset for
Time Namespace").

A user namespace is judged by what the kernel shows: the maps in /proc/<pid>/uid_map and
gid_map (read inside and from the host), the ids a process has on the host (/proc/<pid>/status),
the owner of what the container writes, found in the overlay upper directory, and the namespace
inode. Mappings send container uid 0 to host uid 100000 and gid 0 to host gid 200000, so a uid
taken for a gid (or no mapping at all) shows.

The bundle builder gives the upper directory (the container's ``/``) to the host ids of the
container's root, as an engine preparing a bundle for a user namespace would; the image, the
overlay's lower layer, stays owned by the host's root.

Time namespaces: /proc/uptime (CLOCK_BOOTTIME) and CLOCK_MONOTONIC, read by bulkhead-probe
inside, are ahead of the host's by the configured offsets (time_namespaces(7)).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.containers import ContainerFactory, Result
from bulkhead.runtime import RuntimeCallError, RuntimeClient
from bulkhead.spec import IDMapping, Namespace, Spec, TimeOffset
from conformance._namespaces import HOST, assert_own_namespace, namespaces_of, started
from conformance._support import (
    expect_success,
    grant,
    host_file,
    refused,
    sh,
    stoppable,
    wait_ready,
)
from conformance._userns import (
    GID_HOST,
    SIZE,
    UID_HOST,
    host_maps,
    mapping,
    maps_of,
    status_ids,
    with_userns,
)


def as_user(spec: Spec, uid: int, gid: int) -> Spec:
    assert spec.process is not None and spec.process.user is not None
    spec.process.user.uid, spec.process.user.gid = uid, gid
    return spec


def triples(mappings: list[IDMapping]) -> list[tuple[int, int, int]]:
    return [(m.container_id, m.host_id, m.size) for m in mappings]


def owner(path: Path) -> tuple[int, int]:
    st_ = os.lstat(path)
    return st_.st_uid, st_.st_gid


MAPS = "cat /proc/self/uid_map; echo @; cat /proc/self/gid_map"


def read_maps(result: Result) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    assert result.exit_code == 0, result.stderr
    uid_text, _, gid_text = result.stdout.partition("@")
    return maps_of(uid_text), maps_of(gid_text)


# --- the mappings -------------------------------------------------------------------------------


@pytest.mark.spec(
    "config-linux.namespaces.apply-ns-user",
    "config-linux.user-namespace-mappings.apply-id-mappings",
    "config-linux.user-namespace-mappings.1",
    "config-linux.user-namespace-mappings.2",
    "config-linux.user-namespace-mappings.3",
)
@pytest.mark.requires("userns")
def test_the_maps_inside_are_the_configured_ones(containers: ContainerFactory) -> None:
    # Two uid ranges, so that a runtime writing only the first entry is seen; gids elsewhere.
    uids = [mapping(0, UID_HOST, 1000), mapping(1000, UID_HOST + 50000, 1000)]
    gids = [mapping(0, GID_HOST, SIZE)]
    spec = with_userns(containers.spec(sh(MAPS)), uids, gids)
    uid_map, gid_map = read_maps(containers.run(spec))
    assert uid_map == triples(uids)
    assert gid_map == triples(gids)


@pytest.mark.spec(
    "config-linux.namespaces.apply-ns-user",
    "config-linux.namespaces.6",
    "config-linux.user-namespace-mappings.apply-id-mappings",
)
@pytest.mark.requires("userns")
def test_the_host_sees_the_maps_and_a_user_namespace_of_its_own(
    containers: ContainerFactory,
) -> None:
    with started(containers, with_userns(containers.spec(sh(stoppable())))) as ctr:
        pid = ctr.pid
        assert_own_namespace(ctr, "user")
        # The control: the host's own maps are the identity, which the container's are not.
        assert maps_of(Path(f"/proc/{HOST}/uid_map").read_text())[0][:2] == (0, 0)
        assert host_maps(pid) == ([(0, UID_HOST, SIZE)], [(0, GID_HOST, SIZE)])


@pytest.mark.spec(
    "config-linux.namespaces.apply-ns-user", "config.posix-platform-user.apply-user-uid-gid"
)
@pytest.mark.requires("userns")
@pytest.mark.parametrize("uid,gid", [(0, 0), (1000, 2000)])
def test_the_process_has_the_mapped_ids_on_the_host(
    containers: ContainerFactory, uid: int, gid: int
) -> None:
    # A user other than root cannot write to /: the marker goes to /tmp (mode 1777).
    script = f"id -u > /tmp/id; id -g >> /tmp/id; {stoppable('tmp/ready')}"
    spec = as_user(with_userns(containers.spec(sh(script))), uid, gid)
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr, "tmp/ready")
        inside = host_file(ctr, "/tmp/id").read_text().split()
        seen = status_ids(ctr.pid)
    assert inside == [str(uid), str(gid)], "id inside the container"
    assert seen == {"Uid": [UID_HOST + uid] * 4, "Gid": [GID_HOST + gid] * 4}, seen


@pytest.mark.spec(
    "config-linux.namespaces.apply-ns-user",
    "config-linux.user-namespace-mappings.apply-id-mappings",
)
@pytest.mark.requires("userns")
def test_files_made_inside_belong_to_the_mapped_ids_on_the_host(
    containers: ContainerFactory,
) -> None:
    script = "touch /made && mkdir /made-dir && touch /given && chown 5:7 /given"
    spec = grant(with_userns(containers.spec(sh(script))), "CAP_CHOWN")
    with containers.bundle(spec) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        expect_success(call, "a container writing files as its mapped root")
        owners = {name: owner(bundle.upper / name) for name in ("made", "made-dir", "given")}
    assert owners == {
        "made": (UID_HOST, GID_HOST),
        "made-dir": (UID_HOST, GID_HOST),
        "given": (UID_HOST + 5, GID_HOST + 7),
    }


@pytest.mark.spec("config-linux.user-namespace-mappings.4")
@pytest.mark.requires("userns")
def test_the_rootfs_is_not_chowned_to_realise_the_mappings(containers: ContainerFactory) -> None:
    # A chown through the rootfs copies the file up into the upper directory with its new
    # owner. The control that such a change is seen: the test chowns one file itself, through
    # the mounted rootfs, from the host (where a runtime would do it).
    image = containers.image.path
    before = {p: owner(p) for p in image.rglob("*")}
    spec = with_userns(containers.spec(["true"]))
    with containers.bundle(spec) as (cid, bundle):
        top = owner(bundle.upper)
        expect_success(containers.client.run(cid, bundle.path), "a container in a user namespace")
        os.chown(bundle.rootfs / "srv/bulkhead/file-0", UID_HOST + 1, GID_HOST + 1)
        copied = {
            p.relative_to(bundle.upper): owner(p)
            for p in bundle.upper.rglob("*")
            if (image / p.relative_to(bundle.upper)).exists()
        }
        assert owner(bundle.upper) == top, "the rootfs's own directory changed owner"
    assert copied.pop(Path("srv/bulkhead/file-0")) == (UID_HOST + 1, GID_HOST + 1), copied
    changed = {
        str(path): (owner(image / path), ids)
        for path, ids in copied.items()
        if not (image / path).is_dir() and owner(image / path) != ids
    }
    assert not changed, f"files of the image chowned in the rootfs (before, after): {changed}"
    after = {p: owner(p) for p in image.rglob("*")}
    assert after == before, "the image itself changed owners"


# Container uid 0 -> host H for N ids. At least 6 ids: the default /dev/pts mount asks for
# gid=5 (tty), which must be mapped for devpts to accept it.
single_ranges = st.tuples(
    st.integers(min_value=UID_HOST, max_value=2**31), st.integers(min_value=6, max_value=SIZE)
)


@pytest.mark.spec(
    "config-linux.user-namespace-mappings.apply-id-mappings",
    "config-linux.namespaces.apply-ns-user",
)
@pytest.mark.requires("userns")
@given(uid_range=single_ranges, gid_range=single_ranges)
def test_any_single_range_mapping_is_applied(
    containers: ContainerFactory, uid_range: tuple[int, int], gid_range: tuple[int, int]
) -> None:
    uids = [mapping(0, *uid_range)]
    gids = [mapping(0, *gid_range)]
    spec = with_userns(containers.spec(sh(f"{MAPS}; touch /made")), uids, gids)
    with containers.bundle(spec) as (cid, bundle):
        maps = read_maps(Result.of(containers.client.run(cid, bundle.path)))
        made = owner(bundle.upper / "made")
    assert maps == (triples(uids), triples(gids))
    assert made == (uid_range[0], gid_range[0])


# --- joining a user namespace -------------------------------------------------------------------


@pytest.mark.spec("config-linux.namespaces.4", "config-linux.namespaces.apply-ns-user")
@pytest.mark.requires("userns")
def test_a_user_namespace_given_by_path_is_joined(containers: ContainerFactory) -> None:
    # The first container's user namespace is the one to join: an object of this test's own.
    with started(containers, with_userns(containers.spec(sh(stoppable())))) as first:
        target = f"/proc/{first.pid}/ns/user"
        joined_spec = with_userns(
            containers.spec(sh(f"id -u > /tmp/id; {stoppable('tmp/ready')}")), path=target
        )
        with containers.container(joined_spec, start=True) as second:
            wait_ready(second, "tmp/ready")
            pid = second.pid
            assert namespaces_of(pid)["user"] == namespaces_of(first.pid)["user"]
            assert host_maps(pid)[0] == [(0, UID_HOST, SIZE)]
            assert status_ids(pid)["Uid"] == [UID_HOST] * 4
            assert host_file(second, "/tmp/id").read_text().split() == ["0"]


# --- time namespaces ----------------------------------------------------------------------------

BOOT_OFFSET = 10 * 86400  # ten days
MONO_OFFSET = 3 * 86400 + 1234  # a different value, so that one clock taken for the other shows
TIME_PROBE = (
    "cat /proc/uptime; cat /proc/self/timens_offsets; "
    "bulkhead-probe clock monotonic; bulkhead-probe clock boottime"
)


def time_namespace_declared(runtime: RuntimeClient) -> bool | None:
    """Whether ``features`` lists the time namespace; None if the runtime has no features."""
    try:
        linux = runtime.features().get("linux")
    except (RuntimeCallError, ValueError):
        return None
    kinds = linux.get("namespaces") if isinstance(linux, dict) else None
    return isinstance(kinds, list) and "time" in kinds


def with_time_offsets(spec: Spec) -> Spec:
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="time"))
    spec.linux.time_offsets = {
        "boottime": TimeOffset(secs=BOOT_OFFSET, nanosecs=0),
        "monotonic": TimeOffset(secs=MONO_OFFSET, nanosecs=0),
    }
    return spec


def _clock(line: str) -> float:
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return int(fields["secs"]) + int(fields["nsecs"]) / 1e9


@pytest.mark.spec(
    "config-linux.offset-for-time-namespace.apply-time-offsets",
    "config-linux.namespaces.apply-ns-time",
    "config-linux.namespaces.2",
    "runtime.create.8",
)
@pytest.mark.requires("timens")
def test_time_offsets_shift_the_clocks_or_the_config_is_refused(
    containers: ContainerFactory,
) -> None:
    # config-linux.md: runtimes SHOULD support the time namespace; one that cannot apply it
    # must report an error (runtime.md create), never run the container on the host's clocks.
    declared = time_namespace_declared(containers.client)
    # The control: without a time namespace the probe reads the host's clocks.
    plain = containers.run(containers.spec(sh(TIME_PROBE)))
    assert plain.exit_code == 0, plain.stderr
    _assert_shifted(plain.stdout, *_host_clocks(), boot=0, mono=0)
    spec = with_time_offsets(containers.spec(sh(f"{TIME_PROBE}; {stoppable()}")))
    with containers.container(spec, create=False) as ctr:
        call = ctr.create(check=False)
        if refused(call):
            assert declared is not True, (
                f"{containers.client.name} declares the time namespace in its features, yet "
                f"refused it: {call.stderr.strip()}"
            )
            return
        ctr.start()
        wait_ready(ctr)
        host = _host_clocks()
        assert_own_namespace(ctr, "time")
        out = (ctr.bundle.path / "stdout").read_text()
    _assert_shifted(out, *host, boot=BOOT_OFFSET, mono=MONO_OFFSET)


def _host_clocks() -> tuple[float, float]:
    return time.clock_gettime(time.CLOCK_BOOTTIME), time.clock_gettime(time.CLOCK_MONOTONIC)


def _assert_shifted(out: str, host_boot: float, host_mono: float, *, boot: int, mono: int) -> None:
    lines = [line.split() for line in out.splitlines() if line.strip()]
    uptime = float(lines[0][0])
    offsets = {f[0]: f[1:] for f in lines if f[0] in ("monotonic", "boottime")}
    clocks = {f[0].split("=")[1]: _clock(" ".join(f)) for f in lines if f[0].startswith("clock=")}
    # The container read its clocks before it wrote /ready, the host its own after: the
    # container's value, less the offset, lies a little (a loaded machine: seconds) before.
    for name, seen, host, offset in (
        ("/proc/uptime", uptime, host_boot, boot),
        ("CLOCK_BOOTTIME", clocks["boottime"], host_boot, boot),
        ("CLOCK_MONOTONIC", clocks["monotonic"], host_mono, mono),
    ):
        assert -0.1 <= host - (seen - offset) < 60, (
            f"{name} inside is {seen:.2f}; the host's is {host:.2f} and the offset {offset}"
        )
    # /proc/self/timens_offsets: the offsets the kernel holds for the process's namespace.
    assert offsets == {"monotonic": [str(mono), "0"], "boottime": [str(boot), "0"]}, offsets
