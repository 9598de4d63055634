"""Safe extraction of one layer tar (reference_runtime/engine/images/layertar.py).

Every hostile member aims at a canary directory of the test's own (beside the diff dir, or by
absolute path), so a failure of the extractor lands there and is seen, never on the host; each
refusal has a control showing the same shape of member without the attack extracts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reference_runtime.engine.images.layertar import LayerError, extract_layer


@dataclass
class M:
    """One member to write: the name and type go into the tar verbatim."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    link: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def tar_of(*members: M) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.mode, info.linkname = m.type, m.mode, m.link
            info.uid, info.gid, info.mtime = m.uid, m.gid, m.mtime
            info.devmajor, info.devminor = m.devmajor, m.devminor
            info.pax_headers = dict(m.pax)
            if m.type == tarfile.REGTYPE:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry below ``root`` (lstat: symlinks not followed): mode, size, link target."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            target = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, target)
    return out


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """tmp/a/b/diff (the layer) with a canary dir tmp/canary and files around it."""
    (tmp_path / "a" / "b" / "diff").mkdir(parents=True)
    (tmp_path / "canary").mkdir()
    (tmp_path / "canary" / "passwd").write_text("canary\n")
    (tmp_path / "a" / "escape").write_text("not overwritten\n")
    return tmp_path


def extract(area: Path, data: bytes) -> Path:
    diff = area / "a" / "b" / "diff"
    extract_layer(io.BytesIO(data), diff)
    return diff


def refused(area: Path, data: bytes, match: str) -> None:
    """The layer is refused with ``match`` in the message, and nothing outside diff changed."""
    outside = {k: v for k, v in snapshot(area).items() if not k.startswith("a/b/diff")}
    with pytest.raises(LayerError, match=match):
        extract(area, data)
    after = {k: v for k, v in snapshot(area).items() if not k.startswith("a/b/diff")}
    assert after == outside
    assert (area / "canary" / "passwd").read_text() == "canary\n"


def test_files_dirs_links_keep_content_mode_owner_mtime_and_xattrs(area: Path) -> None:
    data = tar_of(
        M("bin", tarfile.DIRTYPE, mode=0o755, mtime=1_500_000_000),
        M("bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1001,
          pax={"SCHILY.xattr.user.origin": "bulkhead"}),
        M("bin/alias", tarfile.LNKTYPE, link="bin/tool", mode=0o4755),
        M("bin/rel", tarfile.SYMTYPE, link="tool", uid=7, gid=8),
        M("bin/abs", tarfile.SYMTYPE, link=str(area / "canary")),
        M("run", tarfile.DIRTYPE, mode=0o1777),
        M("run/pipe", tarfile.FIFOTYPE, mode=0o620),
        M("deep/er/file", data=b"implicit parents\n"),
    )  # fmt: skip
    result = extract_layer(io.BytesIO(data), area / "a" / "b" / "diff")
    diff = area / "a" / "b" / "diff"
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(b"#!/bin/sh\n") + len(b"implicit parents\n")
    tool = os.lstat(diff / "bin" / "tool")
    assert (tool.st_mode & 0o7777, tool.st_uid, tool.st_gid) == (0o4755, 1000, 1001)
    assert tool.st_mtime == 1_600_000_000
    assert os.getxattr(diff / "bin" / "tool", "user.origin") == b"bulkhead"
    assert os.lstat(diff / "bin" / "alias").st_ino == tool.st_ino
    assert os.readlink(diff / "bin" / "rel") == "tool"
    assert (os.lstat(diff / "bin" / "rel").st_uid, os.lstat(diff / "bin" / "rel").st_gid) == (7, 8)
    # An absolute symlink stays as written (valid inside the container) and was not followed.
    assert os.readlink(diff / "bin" / "abs") == str(area / "canary")
    assert os.listdir(area / "canary") == ["passwd"]
    assert os.lstat(diff / "bin").st_mtime == 1_500_000_000  # set after its children
    assert stat.S_IMODE(os.lstat(diff / "run").st_mode) == 0o1777
    pipe = os.lstat(diff / "run" / "pipe")
    assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o620
    assert stat.S_IMODE(os.lstat(diff / "deep").st_mode) == 0o755
    assert (diff / "deep" / "er" / "file").read_bytes() == b"implicit parents\n"


def test_whiteouts_become_overlayfs_whiteouts(area: Path) -> None:
    data = tar_of(
        M("etc", tarfile.DIRTYPE, mode=0o755),
        M("etc/.wh.doomed", mode=0o600),
        M("opt/lower", tarfile.DIRTYPE, mode=0o755),
        M("opt/lower/.wh..wh..opq"),
        M("opt/lower/c", data=b"c\n"),
        M(".wh..wh.plnk", tarfile.DIRTYPE),  # aufs metadata: skipped, as docker does
    )
    diff = extract(area, data)
    doomed = os.lstat(diff / "etc" / "doomed")
    assert stat.S_ISCHR(doomed.st_mode) and doomed.st_rdev == os.makedev(0, 0)
    assert not (diff / "etc" / ".wh.doomed").exists()
    assert os.getxattr(diff / "opt" / "lower", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(diff / "opt" / "lower")) == ["c"]
    assert sorted(os.listdir(diff)) == ["etc", "opt"]
    # Control: a directory without the marker is not opaque.
    with pytest.raises(OSError):
        os.getxattr(diff / "etc", "trusted.overlay.opaque")


def test_a_leading_dot_slash_is_stripped_and_dot_is_the_layer_root(area: Path) -> None:
    diff = extract(area, tar_of(M(".", tarfile.DIRTYPE, mode=0o711), M("./x", data=b"x")))
    assert (diff / "x").read_bytes() == b"x"
    assert stat.S_IMODE(os.lstat(diff).st_mode) == 0o711


def test_a_later_member_replaces_an_earlier_one(area: Path) -> None:
    diff = extract(area, tar_of(
        M("x", data=b"first"), M("x", data=b"second"),
        M("d", tarfile.DIRTYPE), M("d/inner", data=b"i"), M("d", tarfile.SYMTYPE, link="x"),
        M("k", tarfile.DIRTYPE, mode=0o700), M("k", tarfile.DIRTYPE, mode=0o755),
    ))  # fmt: skip
    assert (diff / "x").read_bytes() == b"second"
    assert os.readlink(diff / "d") == "x"
    assert stat.S_IMODE(os.lstat(diff / "k").st_mode) == 0o755


def test_names_that_climb_out_are_refused(area: Path) -> None:
    extract(area, tar_of(M("inside/escape", data=b"x")))  # the control
    refused(area, tar_of(M("../../escape", data=b"pwned")), r"member \.\./\.\./escape escapes")
    refused(area, tar_of(M("a/../../b", data=b"pwned")), "escapes the layer")
    refused(area, tar_of(M("a/../b", data=b"x")), r"'\.\.' component")


def test_absolute_names_are_refused_not_rewritten(area: Path) -> None:
    canary = area / "canary" / "abs"
    refused(area, tar_of(M(str(canary), data=b"pwned")), "is an absolute path")
    assert not canary.exists()


@pytest.mark.parametrize(("kind", "word"), [(tarfile.CHRTYPE, "character"),
                                            (tarfile.BLKTYPE, "block")])  # fmt: skip
def test_device_nodes_are_refused(area: Path, kind: bytes, word: str) -> None:
    extract(area, tar_of(M("dev/fifo", tarfile.FIFOTYPE)))  # the control: a fifo is fine
    refused(area, tar_of(M("dev/mem", kind, devmajor=1, devminor=1)), f"is a {word} device")


def test_hard_links_out_of_the_layer_or_to_nothing_are_refused(area: Path) -> None:
    extract(area, tar_of(M("t", data=b"t"), M("l", tarfile.LNKTYPE, link="t")))  # control
    refused(area, tar_of(M("x", tarfile.LNKTYPE, link="../../../canary/passwd")),
            "target outside the layer")  # fmt: skip
    refused(area, tar_of(M("x", tarfile.LNKTYPE, link=str(area / "canary" / "passwd"))),
            "absolute path")  # fmt: skip
    refused(area, tar_of(M("early", tarfile.LNKTYPE, link="later"), M("later", data=b"x")),
            "not extracted yet")  # fmt: skip
    refused(area, tar_of(M("x", tarfile.LNKTYPE, link="no/such/dir/file")), "not in the layer")
    assert os.stat(area / "canary" / "passwd").st_nlink == 1


def test_a_hard_link_to_a_symlink_links_the_symlink_not_its_target(area: Path) -> None:
    canary = area / "canary" / "passwd"
    diff = extract(area, tar_of(M("s", tarfile.SYMTYPE, link=str(canary)),
                                M("h", tarfile.LNKTYPE, link="s")))  # fmt: skip
    assert os.readlink(diff / "h") == str(canary)  # linkat(2) without AT_SYMLINK_FOLLOW
    assert os.lstat(diff / "h").st_ino == os.lstat(diff / "s").st_ino
    assert os.stat(canary).st_nlink == 1


def test_nothing_is_written_through_a_symlink_of_the_layer(area: Path) -> None:
    canary = area / "canary"
    # Control: the same names without the symlink land inside the layer.
    extract(area, tar_of(M("etc2", tarfile.DIRTYPE), M("etc2/pwned", data=b"ok")))
    refused(area, tar_of(M("etc3", tarfile.SYMTYPE, link=str(canary)),
                         M("etc3/pwned", data=b"pwned")),
            "etc3 is a symlink")  # fmt: skip
    refused(area, tar_of(M("d", tarfile.SYMTYPE, link="../../.."), M("d/x", data=b"pwned")),
            "d is a symlink")  # fmt: skip
    refused(area, tar_of(M("up", tarfile.SYMTYPE, link="../.."), M("up/escape", data=b"pwned")),
            "up is a symlink")  # fmt: skip
    # A hard link through a symlinked parent would link the canary's inode into the layer.
    refused(area, tar_of(M("e4", tarfile.SYMTYPE, link=str(canary)),
                         M("x", tarfile.LNKTYPE, link="e4/passwd")),
            "e4 is a symlink")  # fmt: skip
    # A whiteout through a symlink would delete the canary.
    refused(area, tar_of(M("e5", tarfile.SYMTYPE, link=str(canary)),
                         M("e5/.wh.passwd")),
            "e5 is a symlink")  # fmt: skip
    # A file's parent that is a file, not a directory.
    refused(area, tar_of(M("f", data=b"x"), M("f/g", data=b"y")), "f is not a directory")
    assert sorted(os.listdir(canary)) == ["passwd"]


def test_a_file_over_a_symlink_replaces_the_link_not_its_target(area: Path) -> None:
    canary = area / "canary" / "passwd"
    diff = extract(area, tar_of(M("p", tarfile.SYMTYPE, link=str(canary)), M("p", data=b"new")))
    assert (diff / "p").read_bytes() == b"new" and not os.path.islink(diff / "p")
    assert canary.read_text() == "canary\n"


def test_whiteouts_that_name_dot_or_dotdot_are_refused(area: Path) -> None:
    extract(area, tar_of(M("etc/.wh.x")))  # the control
    refused(area, tar_of(M("etc/.wh...")), r"names \.\.")
    refused(area, tar_of(M("etc/.wh..")), r"names \.")
    refused(area, tar_of(M(".wh.")), "names nothing")


def test_overlayfs_xattrs_from_the_tar_are_refused(area: Path) -> None:
    extract(area, tar_of(M("x", pax={"SCHILY.xattr.user.ok": "1"})))  # the control
    refused(area, tar_of(M("y", tarfile.DIRTYPE,
                           pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})),
            "overlayfs xattr trusted.overlay.redirect")  # fmt: skip


def test_corrupt_tars_are_refused(area: Path) -> None:
    good = tar_of(M("f", data=b"x" * 5000))
    extract(area, good)  # the control
    with pytest.raises(LayerError, match="corrupt layer tar"):
        extract_layer(io.BytesIO(good[:1024]), area / "a" / "b" / "diff")
    garbage = gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(good)[:-20]))
    with pytest.raises(LayerError, match="corrupt"):
        extract_layer(garbage, area / "a" / "b" / "diff")


def test_the_diff_id_covers_the_whole_stream_padding_included(area: Path) -> None:
    data = tar_of(M("f", data=b"x")) + b"\0" * 4096
    result = extract_layer(io.BytesIO(data), area / "a" / "b" / "diff")
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
