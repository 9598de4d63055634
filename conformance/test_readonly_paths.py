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
from conformance._support import sh

# For each docker read-only path: a file below it (or itself) to open for writing, if any.
WRITE_TARGETS = {
    "/proc/sys": "/proc/sys/kernel/hostname",  # namespaced by UTS: harmless even if writable
    "/proc/sysrq-trigger": "/proc/sysrq-trigger",
}


def run_script(containers: ContainerFactory, script: str, readonly: list[str]) -> list[dict]:
    spec = containers.spec(sh(script))
    assert spec.linux is not None
    spec.linux.readonly_paths = readonly
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    return [
        dict(f.split("=", 1) for f in line.split() if "=" in f)
        for line in result.stdout.splitlines()
    ]


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
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    target = WRITE_TARGETS.get(path) or (
        path if os.path.isfile(path) else first_writable_file_below(path)
    )
    script = f"bulkhead-probe statvfs {path}"
    if target:
        script += f"; bulkhead-probe open-write {target}"
    lines = run_script(containers, script, list(DOCKER_READONLY_PATHS))
    assert lines[0].get("readonly") == "yes", f"{path} is not on a read-only mount: {lines[0]}"
    if target:
        assert lines[1].get("errno") == "EROFS", f"opening {target} for writing: {lines[1]}"


@pytest.mark.spec("config-linux.readonly-paths.apply-readonly-paths")
def test_proc_sys_is_writable_without_readonly_paths(containers: ContainerFactory) -> None:
    # The control: the same open succeeds when /proc/sys is not made read-only.
    lines = run_script(containers, "bulkhead-probe open-write /proc/sys/kernel/hostname", [])
    assert lines[0] == {"result": "ok"}


@pytest.mark.spec(
    "config-linux.readonly-paths.apply-readonly-paths", "config-linux.readonly-paths.1"
)
@given(readonly=strategies.path_subsets([*FIXTURE_FILES, *FIXTURE_DIRS]))
def test_readonly_files_and_directories_refuse_writes_and_only_they(
    containers: ContainerFactory, readonly: list[str]
) -> None:
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    # Files: open for writing. Directories: create a new file inside.
    script = "; ".join(
        f"bulkhead-probe create {p}/new" if p in FIXTURE_DIRS else f"bulkhead-probe open-write {p}"
        for p in paths
    )
    lines = run_script(containers, script, readonly)
    assert len(lines) == len(paths)
    for path, fields in zip(paths, lines, strict=True):
        if path in readonly:
            assert fields.get("errno") == "EROFS", f"read-only {path} accepted a write: {fields}"
        else:
            assert fields == {"result": "ok"}, f"writable {path} refused a write: {fields}"
