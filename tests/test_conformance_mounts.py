"""conformance/_mounts.py: reading mountinfo the way the mount and masked-path tests rely on."""

from __future__ import annotations

import pytest

from conformance._mounts import MOUNTINFO_MARK, parse_mountinfo, split_output, top_mount

# Lines as a container under runc prints them (proc(5) format), trimmed.
MOUNTINFO = """\
78 53 0:42 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/b/up,workdir=/b/w
79 78 0:45 / /proc rw,relatime - proc proc rw
91 79 0:57 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
90 79 0:62 / /proc/acpi ro,relatime - tmpfs tmpfs ro
95 78 0:70 / /srv/with\\040space rw shared:3 master:1 - tmpfs my\\040src rw
96 95 0:71 / /srv/with\\040space rw unbindable - tmpfs second rw
"""


def test_fields_of_a_line() -> None:
    root, _, keys, acpi, *_ = parse_mountinfo(MOUNTINFO)
    assert (root.point, root.fstype, root.device) == ("/", "overlay", "0:42")
    assert root.super_option("upperdir") == "/b/up"
    assert root.tag("master") == "1" and root.tag("shared") is None
    assert (keys.root, keys.fstype, keys.readonly) == ("/null", "tmpfs", False)
    assert acpi.readonly and acpi.tags == ()


def test_escaped_paths_and_several_tags() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    shared = entries[4]
    assert shared.point == "/srv/with space" and shared.source == "my src"
    assert (shared.tag("shared"), shared.tag("master")) == ("3", "1")
    # The last mount at a point is the one a lookup there sees.
    top = top_mount(entries, "/srv/with space")
    assert top is not None and top.mount_id == 96 and top.tag("unbindable") == "unbindable"
    assert top_mount(entries, "/srv") is None


def test_split_output_separates_probe_lines_from_the_mount_table() -> None:
    lines, mounts = split_output(f"a=1\nb=2\n{MOUNTINFO_MARK}\n{MOUNTINFO}")
    assert lines == ["a=1", "b=2"] and len(mounts) == 6
    with pytest.raises(AssertionError, match="no mountinfo"):
        split_output("a=1\n")
