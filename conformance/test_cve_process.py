"""Regressions of the CVEs about what the container process is given (research/security.md §1):
capability sets of exec'd processes (CVE-2022-29162, CVE-2022-27650), the user of ``exec
--user`` (CVE-2026-30892), oversized config strings (CVE-2021-43784), a read-only cgroupfs
(CVE-2023-25809) and sysctls that land in the container's namespaces only (CVE-2025-52881).

Everything is read by the process itself from /proc/self or from the host's /proc; a write a
broken runtime could let through is only ever an open(2) for writing (bulkhead-probe
``open-write`` never writes), or a change the test puts back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.runtime import Call
from bulkhead.spec import RUNC_DEFAULT_CAPABILITIES, Namespace
from bulkhead.strategies import _process_attrs as attrs
from conformance._mounts import PRINT_MOUNTINFO, fields, split_output
from conformance._namespaces import namespaces_of
from conformance._support import (
    WAIT_FOREVER,
    assert_nothing_created,
    expect_refusal,
    expect_success,
    refused,
    sh,
    state_json,
    wait_ready,
)

CAP_STATUS = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status"


def _cap_sets(out: str) -> dict[str, list[str]]:
    found = dict(line.split(":\t", 1) for line in out.strip().splitlines())
    return {
        name: attrs.capability_names(int(found[field], 16))
        for name, field in attrs.CAPABILITY_SET_FIELDS.items()
    }


@contextlib.contextmanager
def _running(containers: ContainerFactory) -> Iterator[Container]:
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        yield ctr


def _exec_process(ctr: Container, tmp_path: Path, process: dict[str, object]) -> Call:
    """``exec --process FILE``: the process as a runtime-spec process object."""
    path = tmp_path / f"process-{ctr.id}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(process))
    return ctr.client.call("exec", "--process", str(path), ctr.id, check=False)


def _process(args: list[str], **caps: list[str]) -> dict[str, object]:
    return {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": caps,
        "noNewPrivileges": True,
    }


# --- capabilities of exec'd processes -----------------------------------------------------------


@pytest.mark.cve("CVE-2022-29162")
@pytest.mark.spec(
    "config.linux-process.apply-capabilities-inheritable",
    "config.linux-process.apply-capabilities-ambient",
    "config.linux-process.apply-capabilities-bounding",
)
def test_an_exec_gets_the_containers_capabilities_with_nothing_inheritable(
    containers: ContainerFactory,
) -> None:
    # runc exec gave processes inheritable capabilities nobody configured: with file
    # capabilities on a binary, execve(2) then grants them (capabilities(7)).
    configured = sorted(RUNC_DEFAULT_CAPABILITIES)
    with _running(containers) as ctr:
        init = ctr.exec("cat", "/proc/1/status")
        execd = ctr.exec(*sh(CAP_STATUS))
    assert execd.exit_code == 0, execd
    seen = _cap_sets(execd.stdout)
    assert seen == {
        "inheritable": [],
        "permitted": configured,
        "effective": configured,
        "bounding": configured,
        "ambient": [],
    }
    # Control: the container's own process reads the same from its status (the probe parses
    # what the kernel shows, and the sets are not empty by accident).
    init_caps = _cap_sets("\n".join(line for line in init.stdout.splitlines() if "Cap" in line))
    assert init_caps == seen


@pytest.mark.cve("CVE-2022-27650")
@pytest.mark.spec(
    "config.linux-process.apply-capabilities-inheritable",
    "config.linux-process.apply-capabilities-effective",
    "config.linux-process.apply-capabilities-permitted",
    "config.linux-process.apply-capabilities-bounding",
)
def test_an_exec_process_gets_exactly_the_capabilities_it_lists(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # crun exec set inheritable capabilities; the process object says exactly which it wants.
    listed = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"],
              "permitted": ["CAP_KILL"]}  # fmt: skip
    with _running(containers) as ctr:
        plain = _exec_process(ctr, tmp_path, _process(list(sh(CAP_STATUS)), **listed))
        # Control: asked for, an inheritable capability is there, so an empty set is seen.
        asked = _exec_process(
            ctr, tmp_path, _process(list(sh(CAP_STATUS)), **listed, inheritable=["CAP_KILL"])
        )
    expect_success(plain, "exec --process")
    expect_success(asked, "exec --process with inheritable")
    want = {**listed, "inheritable": [], "ambient": []}
    assert _cap_sets(plain.stdout) == {k: sorted(v) for k, v in want.items()}
    assert _cap_sets(asked.stdout)["inheritable"] == ["CAP_KILL"]


# --- exec --user ------------------------------------------------------------------------------


@pytest.mark.cve("CVE-2026-30892")
@pytest.mark.spec("config.posix-platform-user.apply-user-uid-gid")
@pytest.mark.parametrize(
    ("user", "ids"), [("1", ["1", "0"]), ("1:2", ["1", "2"]), ("65534:65534", ["65534", "65534"])]
)
def test_exec_user_runs_as_that_user(
    containers: ContainerFactory, user: str, ids: list[str]
) -> None:
    # crun 1.27 parsed `exec -u 1` as uid 0, gid 0.
    with _running(containers) as ctr:
        # Control: without --user the exec runs as the container's user, root here.
        control = ctr.exec("sh", "-c", "id -u; id -g")
        call = ctr.client.call("exec", "--user", user, ctr.id, "sh", "-c", "id -u; id -g",
                               check=False)  # fmt: skip
    assert control.stdout.split() == ["0", "0"], control
    expect_success(call, f"exec --user {user}")
    assert call.stdout.split() == ids


# --- oversized strings ------------------------------------------------------------------------

# 70 KiB, past a uint16 netlink attribute length (CVE-2021-43784); no period repeats within
# 64 KiB, so a value cut or wrapped at 65536 bytes cannot pass for the whole.
BIG = "".join(f"{i:06d}," for i in range(70 * 1024 // 7 + 1))[: 70 * 1024]


@pytest.mark.cve("CVE-2021-43784")
@pytest.mark.spec("config.annotations.apply-annotations", "runtime.create.9")
def test_a_70_kib_annotation_is_kept_whole_or_refused(containers: ContainerFactory) -> None:
    spec = containers.spec(sh(WAIT_FOREVER))
    spec.annotations = {"org.bulkhead.big": BIG, "org.bulkhead.small": "after"}
    with containers.container(spec, create=False) as ctr:
        call = ctr.create(check=False)
        if refused(call):
            assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="refused create")
            return
        state = state_json(ctr.client.raw_state(ctr.id))
        # The namespaces are the config's (no injected path): its own mount, pid, net, ipc, uts.
        own = namespaces_of(ctr.pid)
    assert state.get("annotations") == spec.annotations, "annotations were not kept whole"
    host = namespaces_of("self")
    assert all(own[k] != host[k] for k in ("mount", "pid", "network", "ipc", "uts")), (own, host)


@pytest.mark.cve("CVE-2021-43784")
@pytest.mark.spec("config.process.apply-env", "runtime.create.9")
def test_a_70_kib_environment_entry_arrives_whole_or_is_refused(
    containers: ContainerFactory,
) -> None:
    script = 'printf %s "$BIG" | wc -c; printf %s "$BIG" | sha256sum; echo "$AFTER"'
    spec = containers.spec(sh(script), env=["PATH=/bin", f"BIG={BIG}", "AFTER=kept"])
    with containers.bundle(spec) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        if refused(call):
            assert_nothing_created(containers, cid, bundle=bundle, what="refused run")
            return
    length, digest, after = call.stdout.split("\n")[:3]
    assert int(length) == len(BIG)
    assert digest.split()[0] == hashlib.sha256(BIG.encode()).hexdigest()
    assert after == "kept"


@pytest.mark.cve("CVE-2021-43784")
@pytest.mark.spec("config.hostname.apply-hostname", "runtime.create.9")
def test_a_70_kib_hostname_is_refused_cleanly(containers: ContainerFactory) -> None:
    # Longer than the kernel takes (HOST_NAME_MAX, 64): never cut to fit, never a crash.
    control = containers.run(containers.spec(["hostname"], hostname="box"))
    assert control.exit_code == 0 and control.stdout.strip() == "box", control
    with containers.bundle(containers.spec(["hostname"], hostname=BIG)) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        expect_refusal(call, "a 70 KiB hostname")
        assert_nothing_created(containers, cid, bundle=bundle, what="refused run")


# --- cgroupfs is read-only inside ---------------------------------------------------------------

# For each cgroup hierarchy the container sees: can cgroup.procs be opened for writing (never
# written: bulkhead-probe open-write), and can a directory be made at the top (a tmpfs there).
CGROUP_PROBE = (
    "for d in /sys/fs/cgroup /sys/fs/cgroup/*; do "
    '[ -e "$d/cgroup.procs" ] && echo "procs $d $(bulkhead-probe open-write $d/cgroup.procs)"; '
    "done; "
    'mkdir /sys/fs/cgroup/bh-cve 2>/dev/null && echo "mkdir made" && rmdir /sys/fs/cgroup/bh-cve; '
    f"{PRINT_MOUNTINFO}"
)


@pytest.mark.cve("CVE-2023-25809")
@pytest.mark.spec("config.mounts.apply-mounts", "config-linux.namespaces.apply-ns-cgroup")
@pytest.mark.parametrize("cgroupns", [False, True], ids=["host-cgroupns", "own-cgroupns"])
def test_cgroupfs_is_read_only_inside(containers: ContainerFactory, cgroupns: bool) -> None:
    spec = containers.spec(sh(CGROUP_PROBE))
    assert spec.linux is not None and spec.linux.namespaces is not None
    if cgroupns:
        spec.linux.namespaces.append(Namespace(type="cgroup"))
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines, mounts = split_output(result.stdout)
    under = [
        m for m in mounts if m.point == "/sys/fs/cgroup" or m.point.startswith("/sys/fs/cgroup/")
    ]
    hierarchies = [m for m in under if m.fstype in ("cgroup", "cgroup2")]
    # Control: the probe sees the hierarchies (so "all read-only" is not about nothing).
    assert hierarchies, f"no cgroup hierarchy under /sys/fs/cgroup: {[m.point for m in mounts]}"
    writable = [f"{m.point} ({m.fstype})" for m in under if not m.readonly]
    assert not writable, f"cgroupfs mounts not read-only (the config says ro): {writable}"
    procs = [line.split(" ", 2) for line in lines if line.startswith("procs ")]
    assert procs, f"no cgroup.procs seen inside: {lines}"
    for _, where, outcome in procs:
        assert fields(outcome) == {"result": "error", "errno": "EROFS"}, f"{where}: {outcome}"
    assert "mkdir made" not in lines, "a directory could be made in /sys/fs/cgroup"


# --- sysctls land in the container's namespaces -------------------------------------------------

SYSCTLS = {"kernel.msgmnb": "12346", "net.ipv4.ip_default_ttl": "77"}


def _host_sysctl(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


@contextlib.contextmanager
def _host_sysctls_kept() -> Iterator[dict[str, str]]:
    """The host's values, checked unchanged afterwards (and put back if a runtime wrote them)."""
    before = {k: _host_sysctl(k).read_text().strip() for k in SYSCTLS}
    try:
        yield before
    finally:
        after = {k: _host_sysctl(k).read_text().strip() for k in SYSCTLS}
        for key, value in before.items():
            if after[key] != value:
                _host_sysctl(key).write_text(value)
        assert after == before, f"the host's sysctls changed: {before} -> {after}"


@pytest.mark.cve("CVE-2025-52881")
@pytest.mark.spec("config-linux.sysctl.apply-sysctl")
def test_sysctls_are_applied_inside_and_never_reach_the_host(
    containers: ContainerFactory,
) -> None:
    script = "; ".join(f"cat /proc/sys/{k.replace('.', '/')}" for k in SYSCTLS)
    spec = containers.spec(sh(script))
    assert spec.linux is not None
    spec.linux.sysctl = dict(SYSCTLS)
    with _host_sysctls_kept() as host:
        # The values chosen are not the host's, so "unchanged" and "applied" differ.
        assert all(host[k] != v for k, v in SYSCTLS.items()), host
        result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == list(SYSCTLS.values())
