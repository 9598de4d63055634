"""Masked paths (config-linux.md: Masked Paths): they cannot be read inside the container.

A masked file reads empty (runtimes bind /dev/null over it) and a masked directory lists
nothing (an empty read-only tmpfs); being inaccessible altogether also satisfies the spec.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from bulkhead.rootfs import FIXTURE_CONTENT, FIXTURE_DIRS, FIXTURE_FILES
from bulkhead.spec.defaults import DOCKER_MASKED_PATHS
from conformance._support import sh

READ_EACH = 'for p in "$@"; do echo "$p $(bulkhead-probe read "$p")"; done'


def read_inside(containers: ContainerFactory, masked: list[str], paths: list[str]) -> dict:
    """What bulkhead-probe read reports for each of ``paths``, with ``masked`` masked."""
    spec = containers.spec([*sh(READ_EACH), "sh", *paths])
    assert spec.linux is not None
    spec.linux.masked_paths = masked
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    seen = {}
    for line in result.stdout.splitlines():
        path, _, fields = line.partition(" ")
        seen[path] = dict(f.split("=", 1) for f in fields.split())
    assert set(seen) == set(paths), f"probe output incomplete: {result.stdout!r}"
    return seen


def host_shows_something(path: str) -> bool:
    """Whether the host itself can read anything at ``path`` (else masking is unobservable)."""
    try:
        if os.path.isdir(path):
            return bool(os.listdir(path))
        with open(path, "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False


def unreadable(fields: dict[str, str]) -> bool:
    return (
        fields.get("result") == "error"
        or (fields.get("result") == "file" and fields.get("bytes") == "0")
        or (fields.get("result") == "dir" and fields.get("entries") == "0")
    )


def readable(fields: dict[str, str], path: str) -> bool:
    if path in FIXTURE_DIRS:
        return fields == {"result": "dir", "entries": "1"}
    return fields == {"result": "file", "bytes": str(len(FIXTURE_CONTENT))}


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths")
@pytest.mark.parametrize("path", DOCKER_MASKED_PATHS)
def test_docker_default_masked_path_is_unreadable(containers: ContainerFactory, path: str) -> None:
    if not host_shows_something(path):
        pytest.skip(f"{path} is absent or empty on this host, so masking it cannot be observed")
    fields = read_inside(containers, list(DOCKER_MASKED_PATHS), [path])[path]
    assert unreadable(fields), f"{path} is readable inside the container: {fields}"


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths")
def test_unmasked_fixtures_are_readable(containers: ContainerFactory) -> None:
    # The control: without masking, the probe reads the fixtures' real content.
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    seen = read_inside(containers, [], paths)
    assert all(readable(seen[p], p) for p in paths), seen


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths", "config-linux.masked-paths.1")
@given(masked=strategies.path_subsets([*FIXTURE_FILES, *FIXTURE_DIRS]))
def test_masked_files_and_directories_are_unreadable_and_only_they(
    containers: ContainerFactory, masked: list[str]
) -> None:
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    seen = read_inside(containers, masked, paths)
    for path in paths:
        if path in masked:
            assert unreadable(seen[path]), f"masked {path} is readable: {seen[path]}"
        else:
            assert readable(seen[path], path), f"unmasked {path} was hidden: {seen[path]}"
