"""Masked paths (config-linux.md: Masked Paths): they cannot be read inside the container.

Masking is what runc, crun and youki do and what docker's defaults rely on: /dev/null (a
character device 1:3) bound over a file, an empty read-only tmpfs over a directory. A test
checks both what the kernel's mount table says (a mount of that kind at exactly that path) and
what reading gives (0 bytes, 0 entries): a path that merely fails to open (EPERM for want of a
capability, EACCES, ENOENT) or reads empty for another reason is not masked. Every masked path
also has its control: the same path read in a container without maskedPaths shows content, so
the mask is what hides it, not the host or the container's privileges.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory
from bulkhead.rootfs import FIXTURE_CONTENT, FIXTURE_DIRS, FIXTURE_FILES
from bulkhead.spec.defaults import DOCKER_MASKED_PATHS
from conformance._mounts import PRINT_MOUNTINFO, MountEntry, fields, split_output, top_mount
from conformance._support import grant, sh

PROBE_EACH = (
    'for p in "$@"; do echo "$p $(bulkhead-probe read "$p")";'
    ' echo "$p $(bulkhead-probe stat "$p")"; done; ' + PRINT_MOUNTINFO
)
# /proc/kcore opens only with CAP_SYS_RAWIO (proc(5)): both the control and the masked container
# hold it, so that an unmasked kcore shows content and a mask is the only thing hiding it.
CAPS = ("CAP_SYS_RAWIO",)


@dataclass(frozen=True)
class Seen:
    """What a container saw at one path: a read, an lstat, and the mount on top of it."""

    read: dict[str, str]
    stat: dict[str, str]
    mount: MountEntry | None

    @property
    def content(self) -> bool:
        """Something to hide: a file with bytes in it or a directory with entries."""
        return (self.read.get("result") == "file" and self.read.get("bytes") != "0") or (
            self.read.get("result") == "dir" and self.read.get("entries") != "0"
        )


def look(containers: ContainerFactory, masked: list[str], paths: list[str]) -> dict[str, Seen]:
    """What one container with ``masked`` masked sees at each of ``paths``."""
    spec = grant(containers.spec([*sh(PROBE_EACH), "sh", *paths]), *CAPS)
    assert spec.linux is not None
    spec.linux.masked_paths = masked
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines, mounts = split_output(result.stdout)
    assert len(lines) == 2 * len(paths), f"probe output incomplete: {result.stdout!r}"
    seen = {}
    for i, path in enumerate(paths):
        read_line, stat_line = lines[2 * i], lines[2 * i + 1]
        assert read_line.startswith(path + " ") and stat_line.startswith(path + " "), lines
        seen[path] = Seen(fields(read_line), fields(stat_line), top_mount(mounts, path))
    return seen


def masking_problems(seen: Seen, is_dir: bool) -> list[str]:
    """Why ``seen`` is not the spec's mask (empty when it is)."""
    problems = []
    m = seen.mount
    if m is None:
        return [f"no mount at the path (read {seen.read}, stat {seen.stat})"]
    if is_dir:
        if m.fstype != "tmpfs" or not m.readonly:
            problems.append(f"the mount is {m.fstype} {sorted(m.options)}, not a read-only tmpfs")
        if seen.read != {"result": "dir", "entries": "0"}:
            problems.append(f"listing it gave {seen.read}, not an empty directory")
    else:
        # /dev/null comes from the container's /dev (tmpfs, mknod) or the host's (devtmpfs).
        if m.fstype not in ("tmpfs", "devtmpfs") or m.root.rpartition("/")[2] != "null":
            problems.append(f"the mount is {m.fstype} {m.source}:{m.root}, not a /dev/null")
        if (seen.stat.get("type"), seen.stat.get("rdev")) != ("chr", "1:3"):
            problems.append(f"the node is {seen.stat}, not the character device 1:3 (/dev/null)")
        if seen.read != {"result": "file", "bytes": "0"}:
            problems.append(f"reading it gave {seen.read}, not 0 bytes")
    return problems


def shows_fixture(seen: Seen, path: str) -> bool:
    """The fixture's real content, and nothing mounted over it."""
    if seen.mount is not None:
        return False
    if path in FIXTURE_DIRS:
        return seen.read == {"result": "dir", "entries": "1"}
    return seen.read == {"result": "file", "bytes": str(len(FIXTURE_CONTENT))}


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths")
@pytest.mark.parametrize("path", DOCKER_MASKED_PATHS)
def test_docker_default_masked_path_is_masked(containers: ContainerFactory, path: str) -> None:
    # The control: what a container without maskedPaths sees there (not what the host sees:
    # the container has its own /proc and /sys, and fewer privileges).
    unmasked = look(containers, [], [path])[path]
    if not unmasked.content:
        pytest.skip(
            f"{path} shows nothing to hide in a container without maskedPaths on this host "
            f"({unmasked.read}), so masking it cannot be observed"
        )
    assert unmasked.mount is None or unmasked.mount.fstype in ("proc", "sysfs"), unmasked
    masked = look(containers, list(DOCKER_MASKED_PATHS), [path])[path]
    problems = masking_problems(masked, is_dir=unmasked.read["result"] == "dir")
    assert not problems, f"{path} is not masked: " + "; ".join(problems)


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths")
def test_unmasked_fixtures_are_readable(containers: ContainerFactory) -> None:
    # The control of the property below: without masking, the probe reads the fixtures' real
    # content and nothing is mounted over them.
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    seen = look(containers, [], paths)
    hidden = {p: s for p, s in seen.items() if not shows_fixture(s, p)}
    assert not hidden, f"unmasked fixtures not seen as they are: {hidden}"


@pytest.mark.spec("config-linux.masked-paths.apply-masked-paths", "config-linux.masked-paths.1")
@given(masked=strategies.path_subsets([*FIXTURE_FILES, *FIXTURE_DIRS]))
def test_masked_files_and_directories_are_masked_and_only_they(
    containers: ContainerFactory, masked: list[str]
) -> None:
    paths = [*FIXTURE_FILES, *FIXTURE_DIRS]
    seen = look(containers, masked, paths)
    for path in paths:
        if path in masked:
            problems = masking_problems(seen[path], is_dir=path in FIXTURE_DIRS)
            assert not problems, f"masked {path} is not masked: " + "; ".join(problems)
        else:
            assert shows_fixture(seen[path], path), f"unmasked {path} was hidden: {seen[path]}"
