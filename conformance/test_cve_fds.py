"""Regressions of the descriptor and /proc/self/exe CVEs (research/security.md §1): descriptors
a careless caller leaves open must not reach the container (CVE-2024-21626's leaked host
directory, CVE-2016-9962's exec), ``process.cwd`` = /proc/self/fd/N must not put the process in
a host directory, and no process in the container's view may lead to the host's runtime
binary through /proc/<pid>/exe (CVE-2019-5736).

The runtime is started with an O_PATH descriptor on a host canary directory and a read-only
one on a canary file, at chosen numbers (conformance/_canary.py ``run_with_fds``), without
``--preserve-fds``; the controls hand them over with ``--preserve-fds`` and see them arrive, so
a listing that misses them cannot pass for one that would show them. Nothing here writes to the
runtime binary: it is only stat(2)ed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.runtime import Call
from bulkhead.spec import Spec
from conformance._canary import (
    WITNESS,
    Canary,
    fd_targets,
    leaked_fds,
    make_canary,
    run_with_fds,
    same_file,
    with_mounts,
    witness_control,
)
from conformance._mounts import bind
from conformance._support import WAIT_FOREVER, expect_success, refused, sh, wait_ready

# The container's pid 1 lists its own descriptors from a child (so the listing's own fd is not
# among them): one number a line.
LIST_INIT_FDS = "ls /proc/1/fd; true"


def _numbers(out: str) -> list[int]:
    return sorted(int(w) for w in out.split() if w.isdigit())


def _run(containers: ContainerFactory, spec: Spec, fds: dict[int, int], *extra: str) -> Call:
    with containers.bundle(spec) as (cid, bundle):
        return run_with_fds(
            containers.client, "run", *extra, "--bundle", str(bundle.path), cid, fds=fds,
            stdio_dir=bundle.path,
        )  # fmt: skip


@pytest.mark.cve("CVE-2024-21626")
@pytest.mark.spec("runtime-linux.file-descriptors.1")
def test_descriptors_left_open_by_the_caller_never_reach_the_container(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    spec = containers.spec(sh(LIST_INIT_FDS))
    with leaked_fds(canary) as mine:
        fds = {3: mine["dir"], 4: mine["file"], 7: mine["dir"]}
        # Control: asked to (--preserve-fds 2), the runtime hands 3 and 4 on, and the
        # listing sees them.
        control = _run(containers, spec, fds, "--preserve-fds", "2")
        expect_success(control, "run --preserve-fds 2")
        assert _numbers(control.stdout) == [0, 1, 2, 3, 4], control.stdout
        call = _run(containers, spec, fds)
    expect_success(call, "run with descriptors left open")
    assert _numbers(call.stdout) == [0, 1, 2], f"descriptors leaked: {call.stdout}"


@pytest.mark.cve("CVE-2024-21626")
@pytest.mark.spec("runtime-linux.file-descriptors.1", "runtime.lifecycle.4")
def test_the_created_init_holds_no_descriptor_of_the_callers(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # Seen from the host while the container waits for start: the runtime's side of the
    # container (its init) is where runc leaked its O_PATH of /sys/fs/cgroup.
    canary = make_canary(tmp_path)
    spec = containers.spec(sh(WAIT_FOREVER))
    seen: dict[str, dict[int, str]] = {}
    with leaked_fds(canary) as mine:
        fds = {3: mine["dir"], 4: mine["file"]}
        for label, extra in (("preserved", ("--preserve-fds", "2")), ("leaked", ())):
            with containers.bundle(spec) as (cid, bundle):
                call = run_with_fds(
                    containers.client, "create", *extra, "--bundle", str(bundle.path), cid,
                    fds=fds, stdio_dir=bundle.path,
                )  # fmt: skip
                expect_success(call, f"create ({label})")
                pid = containers.client.state(cid).pid
                assert pid
                targets = fd_targets(pid)
                hits = [n for n in targets if _is_canary(pid, n, canary)]
                dirs = [n for n in targets if _is_dir(pid, n)]
                seen[label] = {n: targets[n] for n in hits}
                if label == "leaked":
                    assert not dirs, f"the created init holds directories: {targets}"
    # Control: the descriptors handed over on purpose are seen from the host in the init.
    assert sorted(seen["preserved"]) == [3, 4], seen
    assert seen["leaked"] == {}, f"the created init holds the caller's descriptors: {seen}"


def _is_canary(pid: int, fd: int, canary: Canary) -> bool:
    where = f"/proc/{pid}/fd/{fd}"
    return same_file(where, canary.path) or same_file(where, canary.file("marker"))


def _is_dir(pid: int, fd: int) -> bool:
    try:
        return stat.S_ISDIR(os.stat(f"/proc/{pid}/fd/{fd}").st_mode)
    except OSError:
        return False


# --- process.cwd = /proc/self/fd/N ------------------------------------------------------------

# Where the process stands and what is there: a leaked host directory would show the canary's
# marker, and a write would land in it.
CWD_REPORT = "pwd; ls; touch ./bh-cwd-probe; true"


def _assert_confined(stdout: str, what: str) -> None:
    """The process stood inside the container: getcwd(3) gave a path from its root (not an
    error, not an "(unreachable)" one), and the canary's marker was not what it listed."""
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("/"), f"{what}: not a directory of the container: {stdout}"
    assert "marker" not in lines[1:], f"{what}: the process stood in the canary: {stdout}"


FD_NUMBERS = range(3, 11)


@pytest.mark.cve("CVE-2024-21626")
@pytest.mark.spec("config.process.apply-cwd")
def test_a_cwd_through_proc_self_fd_never_lands_on_the_host(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    spec = containers.spec(sh(CWD_REPORT))
    witness_control(containers, canary, spec)
    # Control: a cwd that is the canary, bound in, shows its marker and takes the write, so the
    # probe tells a host directory from the container's.
    control = with_mounts(spec.model_copy(deep=True), bind(WITNESS, canary.path, "rbind", "rw"))
    assert control.process is not None
    control.process.cwd = WITNESS
    result = containers.run(control)
    assert result.exit_code == 0 and "marker" in result.stdout.split(), result
    canary.file("bh-cwd-probe").unlink()
    before = canary.snapshot()
    with leaked_fds(canary) as mine:
        fds = {n: mine["dir"] for n in FD_NUMBERS}
        for n in FD_NUMBERS:
            attack = spec.model_copy(deep=True)
            assert attack.process is not None
            attack.process.cwd = f"/proc/self/fd/{n}"
            call = _run(containers, attack, fds)
            canary.assert_untouched(before, f"cwd /proc/self/fd/{n}")
            if not refused(call):
                _assert_confined(call.stdout, f"cwd /proc/self/fd/{n}")


@pytest.mark.cve("CVE-2024-21626")
@pytest.mark.spec("config.process.apply-cwd")
def test_exec_with_a_cwd_through_proc_self_fd_never_lands_on_the_host(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    spec = with_mounts(containers.spec(sh(WAIT_FOREVER)), bind(WITNESS, canary.path, "rbind"))
    with containers.container(spec, start=True) as ctr:
        wait_ready(ctr)
        # Control: exec --cwd at the canary, bound in, sees its marker and writes it.
        control = ctr.client.exec(ctr.id, sh(CWD_REPORT), cwd=WITNESS)
        assert control.returncode == 0 and "marker" in control.stdout.split(), control
        canary.file("bh-cwd-probe").unlink()
        before = canary.snapshot()
        with leaked_fds(canary) as mine:
            fds = {n: mine["dir"] for n in FD_NUMBERS}
            for n in FD_NUMBERS:
                call = run_with_fds(
                    ctr.client, "exec", "--cwd", f"/proc/self/fd/{n}", ctr.id, *sh(CWD_REPORT),
                    fds=fds, stdio_dir=ctr.bundle.path,
                )  # fmt: skip
                canary.assert_untouched(before, f"exec --cwd /proc/self/fd/{n}")
                if not refused(call):
                    _assert_confined(call.stdout, f"exec --cwd /proc/self/fd/{n}")


@pytest.mark.cve("CVE-2016-9962")
@pytest.mark.spec("runtime-linux.file-descriptors.1")
def test_exec_passes_no_descriptor_of_the_callers_to_the_process(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    # The exec'd shell lists its own descriptors from a child.
    script = "ls /proc/$$/fd; true"
    with containers.container(containers.spec(sh(WAIT_FOREVER)), start=True) as ctr:
        wait_ready(ctr)
        with leaked_fds(canary) as mine:
            fds = {3: mine["dir"], 4: mine["file"], 7: mine["dir"]}
            control = run_with_fds(
                ctr.client, "exec", "--preserve-fds", "2", ctr.id, *sh(script), fds=fds,
                stdio_dir=ctr.bundle.path,
            )  # fmt: skip
            expect_success(control, "exec --preserve-fds 2")
            assert _numbers(control.stdout) == [0, 1, 2, 3, 4], control.stdout
            call = run_with_fds(
                ctr.client, "exec", ctr.id, *sh(script), fds=fds, stdio_dir=ctr.bundle.path
            )
    expect_success(call, "exec with descriptors left open")
    assert _numbers(call.stdout) == [0, 1, 2], f"descriptors leaked into exec: {call.stdout}"


# --- /proc/<pid>/exe (CVE-2019-5736) ------------------------------------------------------------


def _runtime_binaries(binary: Path) -> list[Path]:
    """The runtime's executable and, for a script (#!), its interpreter: what a process of the
    runtime inside the container would show as /proc/<pid>/exe."""
    found = [binary.resolve()]
    with open(binary, "rb") as f:
        head = f.read(256)
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].split()[0].decode()
        found.append(Path(interpreter).resolve())
    return found


# Every process the container sees: "pid|dev:ino|ro|link" for what its exe link leads to
# (stat -L, the device in decimal; whether statvfs(3) finds that mount read-only; readlink), or
# the error reading it.
EXE_REPORT = (
    'echo "busybox|$(stat -L -c %d:%i /bin/busybox)|-|-"; for p in /proc/[0-9]*; do '
    'id=$(stat -L -c %d:%i $p/exe 2>&1 | tr -d "\\n"); '
    'ro=$(bulkhead-probe statvfs $p/exe | sed -n "s/.*readonly=//p"); '
    'echo "${p#/proc/}|$id|${ro:--}|$(readlink $p/exe 2>&1)"; done'
)


def _exe_fields(line: str) -> tuple[str, str, str, str]:
    pid, shown, readonly, link = line.split("|", 3)
    return pid, shown, readonly, link


@pytest.mark.cve("CVE-2019-5736")
@pytest.mark.spec("runtime.lifecycle.4")
def test_no_process_in_the_container_leads_writably_to_the_runtime_binary(
    containers: ContainerFactory,
) -> None:
    # A container process that reaches the runtime's executable (or any host binary) through
    # /proc/<pid>/exe can reopen it for writing once it stops running. Safe answers (runc's and
    # crun's fixes): the link cannot be followed (a non-dumpable process, or one holding
    # capabilities the container lacks: ptrace(2) access mode), it leads to a sealed copy (a
    # memfd), or to the binary through a read-only mount (runc 1.1's bind). The container's own
    # programs live on its root filesystem. Only stat(2), statvfs(3) and readlink(2) are used.
    binaries = _runtime_binaries(containers.client.binary)
    named = {f"{os.stat(b).st_dev}:{os.stat(b).st_ino}": str(b) for b in binaries}
    with containers.container(containers.spec(sh(WAIT_FOREVER))) as ctr:
        # While created, the container's pid 1 is the runtime's own init; a process exec'd
        # into it looks at every pid it can see.
        early = ctr.exec(*sh(EXE_REPORT))
        if early.exit_code != 0:
            pytest.skip(f"{ctr.client.name} refuses exec into a created container: {early}")
        ctr.start()
        wait_ready(ctr)
        late = ctr.exec(*sh(EXE_REPORT))
    assert late.exit_code == 0, late
    late_ids = {f[0]: f[1] for f in map(_exe_fields, late.stdout.splitlines())}
    own_fs = late_ids["busybox"].split(":")[0]
    # Control: the probe does follow exe links: the started program is busybox, and seen so.
    assert late_ids.get("1") == late_ids["busybox"], f"pid 1 is not busybox: {late.stdout}"
    for report in (early.stdout, late.stdout):
        for pid, shown, readonly, link in map(_exe_fields, report.splitlines()):
            readable = shown.replace(":", "", 1).isdigit()  # "dev:ino", not stat's error
            if pid == "busybox" or not readable or shown.split(":")[0] == own_fs:
                continue  # unreadable, or a program of the container's own root filesystem
            what = named.get(shown, link)
            assert readonly == "yes" or link.startswith("/memfd:"), (
                f"pid {pid} inside leads to {what} (a host file) on a writable mount: {report}"
            )
