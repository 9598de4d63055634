"""Read-only paths (config-linux.md: Readonly Paths): writes inside them fail with EROFS.

The probe opens files for writing but never writes a byte, and creates files only in the
container's own fixture directories, so a runtime that fails here cannot change the host.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from bulkhead.rootfs import FIXTURE_DIRS, FIXTURE_FILES
from bulkhead.spec.defaults import DOCKER_READONLY_PATHS
from conformance._mounts import PRINT_MOUNTINFO, MountEntry, fields, split_output, top_mount
from conformance._support import sh

# For each docker read-only path: a file below it (or itself) to open for writing, if any.
WRITE_TARGETS = {
    "/proc/sys": "/proc/sys/kernel/hostname",  # namespaced by UTS: harmless even if writable
    "/proc/sysrq-trigger": "/proc/sysrq-trigger",
}


def run_script(
    containers: ContainerFactory, script: str, readonly: list[str]
) -> tuple[list[dict[str, str]], list[MountEntry]]:
    """Each probe line ``script`` printed, and the container's mount table after them."""
    spec = containers.spec(sh(script + "; " + PRINT_MOUNTINFO))
    assert spec.linux is not None
    spec.linux.readonly_paths = readonly
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines, mounts = split_output(result.stdout)
    return [fields(line) for line in lines], mounts


def first_writable_file_below(path: str) -> str | None:
    """A file whose mode lets its owner write: for a 0444 file the permission check comes
    first and answers EACCES whatever the mount, which would prove nothing."""
    for root, _, files in os.walk(path):
        for name in sorted(files):
            candidate = Path(root) / name
            if candidate.stat().st_mode & 0o200:
                return str(candidate)
    return None


@pytest.mark.spec("config-linux.readonly-paths.apply-readonly-paths")
@pytest.mark.parametrize("path", DOCKER_READONLY_PATHS)
def test_docker_default_readonly_path_refuses_writes(
    containers: ContainerFactory, path: str
) -> None:
    # /proc inside is the container's own procfs, whose global entries match the host's: the
    # host says what to try, the control container (no readonlyPaths) says whether it is there.
    target = WRITE_TARGETS.get(path) or (
        path if os.path.isfile(path) else first_writable_file_below(path)
    )
    script = f"bulkhead-probe statvfs {path}"
    if target:
        script += f"; bulkhead-probe open-write {target}"
    control, _ = run_script(containers, script, [])
    if control[0].get("result") == "error":
        pytest.skip(f"{path} is not there in a container on this kernel: {control[0]}")
    # The control: without readonlyPaths the same path is writable, so EROFS below comes from
    # the read-only mount and not from /proc itself.
    assert control[0].get("readonly") == "no", f"{path} is read-only without readonlyPaths"
    if target:
        assert control[1] == {"result": "ok"}, f"{target} refuses writes anyway: {control[1]}"
    lines, mounts = run_script(containers, script, list(DOCKER_READONLY_PATHS))
    assert lines[0].get("readonly") == "yes", f"{path} is not on a read-only mount: {lines[0]}"
    top = top_mount(mounts, path)
    assert top is not None and top.readonly, f"no read-only mount at {path}: {top}"
    if target:
        assert lines[1].get("errno") == "EROFS", f"opening {target} for writing: {lines[1]}"


@pytest.mark.spec(
    "config-linux.readonly-paths.apply-readonly-paths", "config-linux.readonly-paths.1"
)
@given(readonly=strategies.path_subsets([*FIXTURE_FILES, *FIXTURE_DIRS]))
def test_readonly_files_and_directories_refuse_writes_and_only_they(
    containers: ContainerFactory, readonly: list[str]
) -> None:
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    # Files: open for writing. Directories: create a new file inside. The fixtures are root's
    # and owner-writable, so only a read-only mount can refuse (EROFS, never EACCES).
    script = "; ".join(
        f"bulkhead-probe create {p}/new" if p in FIXTURE_DIRS else f"bulkhead-probe open-write {p}"
        for p in paths
    )
    lines, mounts = run_script(containers, script, readonly)
    assert len(lines) == len(paths), lines
    for path, seen in zip(paths, lines, strict=True):
        top = top_mount(mounts, path)
        if path in readonly:
            assert seen.get("errno") == "EROFS", f"read-only {path} accepted a write: {seen}"
            assert top is not None and top.readonly, f"no read-only mount at {path}: {top}"
        else:
            assert seen == {"result": "ok"}, f"writable {path} refused a write: {seen}"
            assert top is None, f"something is mounted over writable {path}: {top}"
