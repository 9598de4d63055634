"""Regressions of the /dev/null, /dev/console and masked-path CVEs (research/security.md §1).

A runtime masks a file by binding the null device over it and gives a terminal's container a
/dev/console bound from its pty; when the image, not the runtime, decides what /dev holds (no
tmpfs on /dev in the config), /dev/null and /dev/console may be symlinks. Followed, they let the
runtime bind an attacker's file over masked paths (CVE-2025-31133), mount the pty elsewhere
(CVE-2025-52565), or create and chown files outside the rootfs (CVE-2026-88264/-88265). Here
every such link points at a canary of the test's own (conformance/_canary.py): reachable inside
the container through a bind of the canary where the attack needs a container path, or by its
host path where the attack is on the host. Each verdict has its control in the same test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.containers import Container, ContainerFactory
from bulkhead.runtime import Call
from bulkhead.spec import Spec
from conformance._canary import (
    CANARY_TEXT,
    WITNESS,
    Canary,
    console_socket,
    make_canary,
    plant_link,
    with_mounts,
    without_dev_mounts,
    witness_control,
)
from conformance._mounts import PRINT_MOUNTINFO, bind, split_output, top_mount
from conformance._support import refused, sh

# Masked here: a file of the image and one of procfs (both exist on every host).
MASKED_FILES = ("/srv/bulkhead/file-0", "/proc/interrupts")
# Unix98 pty slaves have majors 136-143 (Documentation/admin-guide/devices.txt).
PTY_MAJORS = range(136, 144)


def _masked_file_report(paths: tuple[str, ...]) -> str:
    """For each path: its type and numbers (lstat), then its first bytes (a bound canary file
    would show CANARY_TEXT there)."""
    parts = [f"echo \"{p} $(stat -c '%F %t:%T' {p}) [$(head -c 64 {p})]\"" for p in paths]
    return "; ".join(parts)


def _expected_masks(paths: tuple[str, ...]) -> list[str]:
    return [f"{p} character special file 1:3 []" for p in paths]


@pytest.mark.cve("CVE-2025-31133")
@pytest.mark.spec(
    "config-linux.masked-paths.apply-masked-paths",
    "config-linux.readonly-paths.apply-readonly-paths",
)
def test_masking_never_binds_what_a_dev_null_symlink_points_at(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # The advisory's target was /proc/sys/kernel/core_pattern; a file of the canary mimics it,
    # reached inside through a bind of the canary (so a vulnerable runtime binds a harmless file).
    canary = make_canary(tmp_path, files=("core_pattern",))
    witness = f'echo "witness [$(head -c 64 {WITNESS}/core_pattern)]"'
    script = f"{_masked_file_report(MASKED_FILES)}; {witness}; {PRINT_MOUNTINFO}"
    spec = without_dev_mounts(containers.spec(sh(script)))
    assert spec.linux is not None and spec.linux.masked_paths is not None
    spec.linux.masked_paths += ["/srv/bulkhead/file-0"]
    with_mounts(spec, bind(WITNESS, canary.path, "rbind", "rw"))
    witness_control(containers, canary, spec)
    # Control: with the runtime's own /dev/null the files are masked, and the canary's text is
    # readable where it is bound (so a mask made from it would show that text).
    expected = [*_expected_masks(MASKED_FILES), f"witness [{CANARY_TEXT.strip()}]"]
    control = containers.run(spec)
    assert control.exit_code == 0, control.stderr
    assert split_output(control.stdout)[0] == expected, control.stdout
    before = canary.snapshot()
    with containers.bundle(spec) as (cid, bundle):
        plant_link(bundle, "/dev/null", f"{WITNESS}/core_pattern")
        call = containers.client.run(cid, bundle.path)
    canary.assert_untouched(before, "a rootfs whose /dev/null is a symlink to it")
    if not refused(call):
        lines, mounts = split_output(call.stdout)
        assert lines == expected, call.stdout
        proc_sys = top_mount(mounts, "/proc/sys")
        assert proc_sys is not None and proc_sys.readonly, "/proc/sys is not read-only"


# --- /dev/console for a terminal ------------------------------------------------------------------

# What the container reports of its console: the node itself, what it resolves to, its mount.
CONSOLE_REPORT = (
    "{ stat -c '%F' /dev/console; readlink /dev/console; stat -L -c '%F %t' /dev/console; "
    f"{PRINT_MOUNTINFO}; }} >/console-report 2>&1"
)


def _run_with_terminal(containers: ContainerFactory, spec: Spec, tmp_path: Path,
                       links: dict[str, str]) -> tuple[bool, str]:  # fmt: skip
    """Creates and starts ``spec`` with a terminal and a console socket; returns whether the
    runtime accepted it and the report its program wrote (read from the overlay upper)."""
    assert spec.process is not None
    spec.process.terminal = True
    with console_socket(tmp_path) as sock, containers.container(spec, create=False) as ctr:
        for inside, target in links.items():
            plant_link(ctr.bundle, inside, target)
        if refused(_create_with_console(ctr, sock.path)):
            return False, ""
        assert sock.received, "the runtime accepted a terminal but sent no pty master"
        ctr.start()
        ctr.wait_for("stopped")
        report = ctr.bundle.upper / "console-report"
        return True, report.read_text() if report.exists() else ""


def _create_with_console(ctr: Container, sock: Path) -> Call:
    # With a terminal the runtime's own messages are all that reach these files; the init
    # holds its own copy, so ours is closed once create returns.
    with (ctr.bundle.path / "stdout").open("a+") as out:
        return ctr.client.call(
            "create", "--bundle", str(ctr.bundle.path), "--console-socket", str(sock), ctr.id,
            check=False, stdout=out, stderr=out,
        )  # fmt: skip


def _assert_console_is_a_pty(report: str, canary: Canary | None = None) -> None:
    head, mounts = split_output(report)
    # /dev/console is the pty itself (runc binds it) or a symlink to it (crun).
    kind, *rest = head
    resolved = rest[-1].split(" ")
    assert resolved[0:3] == ["character", "special", "file"], report
    assert int(resolved[3], 16) in PTY_MAJORS, f"/dev/console is not a pty: {report}"
    if kind == "symbolic link":
        assert rest[0].startswith(("/dev/pts/", "pts/")), f"/dev/console links to {rest[0]}"
    else:
        at = top_mount(mounts, "/dev/console")
        assert at is not None and at.fstype == "devpts", f"/dev/console is not from devpts: {at}"
    if canary is not None:
        stray = [m.point for m in mounts if m.point.startswith(WITNESS + "/")]
        assert not stray, f"the pty was mounted in the canary: {stray}"


@pytest.mark.cve("CVE-2025-52565")
@pytest.mark.spec("config-linux.default-devices.1", "config.process.apply-terminal")
def test_a_console_symlink_in_the_image_never_redirects_the_pty_mount(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path, files=("console",))
    spec = with_mounts(
        without_dev_mounts(containers.spec(sh(CONSOLE_REPORT)), keep=["/dev/pts"]),
        bind(WITNESS, canary.path, "rbind", "rw"),
    )
    witness_control(containers, canary, spec)
    # Control: with the runtime's own /dev, the console is the pty.
    accepted, report = _run_with_terminal(containers, spec.model_copy(deep=True), tmp_path, {})
    assert accepted, "a terminal container without a /dev tmpfs was refused"
    _assert_console_is_a_pty(report)
    before = canary.snapshot()
    accepted, report = _run_with_terminal(
        containers, spec.model_copy(deep=True), tmp_path, {"/dev/console": f"{WITNESS}/console"}
    )
    canary.assert_untouched(before, "a rootfs whose /dev/console links into it")
    if accepted:
        _assert_console_is_a_pty(report, canary)


@pytest.mark.cve("CVE-2026-88264")
@pytest.mark.spec("config-linux.default-devices.1", "config.process.apply-terminal")
def test_a_console_symlink_to_the_host_creates_nothing_there(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # With nothing mounted on /dev, the console's mount point is made in the image's /dev:
    # through a symlink to a host path, a careless runtime makes a root-owned file there.
    canary = make_canary(tmp_path)
    spec = without_dev_mounts(containers.spec(sh(CONSOLE_REPORT)), keep=["/dev/pts"])
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    target = canary.file("console")
    accepted, report = _run_with_terminal(containers, spec, tmp_path, {"/dev/console": str(target)})
    canary.assert_untouched(before, "a rootfs whose /dev/console links to it")
    if accepted:
        _assert_console_is_a_pty(report)


# --- stdio and /dev/null --------------------------------------------------------------------------


@pytest.mark.cve("CVE-2026-88265")
@pytest.mark.spec("config-linux.default-devices.1", "config.posix-platform-user.apply-user-uid-gid")
def test_a_dev_null_symlink_to_the_host_is_never_opened_or_chowned(
    containers: ContainerFactory, tmp_path: Path
) -> None:
    # A runtime reopening /dev/null for the stdio it was given (and chowning it to the
    # process's user) must open the container's null device, never what a symlink names.
    canary = make_canary(tmp_path, files=("null",))
    script = "stat -L -c '%F %t:%T' /proc/self/fd/0 /proc/self/fd/2 /dev/null; id -u"
    spec = without_dev_mounts(containers.spec(sh(script)))
    assert spec.process is not None and spec.process.user is not None
    spec.process.user.uid = spec.process.user.gid = 1000
    witness_control(containers, canary, spec)
    before = canary.snapshot()
    with containers.bundle(spec) as (cid, bundle):
        plant_link(bundle, "/dev/null", str(canary.file("null")))
        call = containers.client.run(cid, bundle.path)
    canary.assert_untouched(before, "a rootfs whose /dev/null links to it")
    if not refused(call):
        stdin, stderr, null, uid = call.stdout.split("\n")[:4]
        # The stdio the runtime was given (a pipe, or the null device), never a host file.
        assert {stdin, stderr} <= {"fifo 0:0", "character special file 1:3"}, call.stdout
        assert (null, uid) == ("character special file 1:3", "1000"), call.stdout
