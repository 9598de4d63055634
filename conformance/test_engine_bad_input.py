"""Refusals of the engine: an unknown image, a port already in use, a name taken, a bad port
spec, hostile and tampered images, a full disk under the root. Each is one line on stderr,
"bulkhead-engine: failed to ...", exit 125 (docker's status for its own errors), and nothing
half-made stays: the engine's files, the mounts below its directories, the links of its network
namespace and the listening sockets are as they were. Each refusal has its control in the same
test: the same command on valid input succeeds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead import images
from bulkhead.diskfull import fill
from bulkhead.suite import Suite
from conformance._engine import (
    BUSYBOX,
    IDLE,
    Engine,
    close_engine,
    expect_engine_error,
    expect_ok,
    free_port,
    listening_on,
    mounts_under,
    new_engine,
    sh,
)

pytest_plugins = ("conformance._engine_fixtures",)
pytestmark = pytest.mark.engine

BENIGN_REF = "bulkhead/benign:test"


def tree(path: Path) -> frozenset[str]:
    """Every name below ``path`` (symlinks not followed), with its kind."""
    found = set()
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(top, name)
            kind = "l" if os.path.islink(full) else "d" if os.path.isdir(full) else "f"
            found.add(f"{kind} {os.path.relpath(full, path)}")
    return frozenset(found)


@dataclass(frozen=True)
class Trace:
    """What a refused command must not change."""

    root: frozenset[str]
    exec_root: frozenset[str]
    session: frozenset[str]  # the session directory's own entries (an escape lands there)
    mounts: tuple[str, ...]
    links: frozenset[str]

    @classmethod
    def of(cls, engine: Engine) -> Trace:
        mounts = [*mounts_under(engine.root), *mounts_under(engine.exec_root)]
        links = (
            frozenset(link.name for link in engine.engine_links())
            if engine.engine_netns.exists()
            else frozenset()
        )
        return cls(
            root=tree(engine.root),
            exec_root=tree(engine.exec_root),
            session=frozenset(os.listdir(engine.root.parent)),
            mounts=tuple(sorted(m.point for m in mounts)),
            links=links,
        )

    def differences(self, other: Trace) -> list[str]:
        out = []
        for name in ("root", "exec_root", "session", "links"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out.append(f"{name}: new {sorted(b - a)[:10]}, gone {sorted(a - b)[:10]}")
        if self.mounts != other.mounts:
            out.append(f"mounts: {self.mounts} -> {other.mounts}")
        return out


def assert_unchanged(before: Trace, engine: Engine, what: str) -> None:
    problems = before.differences(Trace.of(engine))
    assert not problems, f"{what} left behind:\n  " + "\n  ".join(problems)


@pytest.fixture
def scratch(bulkhead_suite: Suite) -> Iterator[Path]:
    """A directory for the test's image files, in the session's directory."""
    path = Path(tempfile.mkdtemp(prefix="images-", dir=bulkhead_suite.workdir))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def benign_image() -> images.ImageSpec:
    """The busybox image plus an ordinary top layer: the control for the bad images."""
    image = images.busybox_test_image()
    image.layers.append([images.LayerEntry("benign", "file", data=b"an ordinary file\n")])
    return image


def test_an_unknown_image_is_refused(engine: Engine) -> None:
    expect_ok(engine("run", "--rm", "--network", "none", BUSYBOX, "true", check=False), "run")
    before = Trace.of(engine)
    for args in (
        ("run", "--rm", "--network", "none", "bulkhead/nope:test", "true"),
        ("image", "inspect", "bulkhead/nope:test"),
        ("image", "rm", "bulkhead/nope:test"),
    ):
        call = engine(*args, check=False)
        expect_engine_error(call, " ".join(args[:2]), "failed to", "bulkhead/nope:test")
    assert_unchanged(before, engine, "a refused run of an unknown image")


def test_a_port_in_use_is_refused_before_anything_is_made(engine: Engine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        before = Trace.of(engine)
        call = engine("run", "-d", "-p", f"127.0.0.1:{port}:80", BUSYBOX, *sh(IDLE), check=False)
        expect_engine_error(call, "run -p on a port in use", "address already in use", str(port))
        assert_unchanged(before, engine, "a refused run -p")
    # The control: the same call once the port is free.
    cid = engine.run_detached("-p", f"127.0.0.1:{port}:80", BUSYBOX, *sh(IDLE))
    assert listening_on(port) and engine.inspect(cid).running


def test_a_name_in_use_is_refused(engine: Engine) -> None:
    name = f"taken-{os.getpid()}"
    first = engine.run_detached("--name", name, "--network", "none", BUSYBOX, *sh(IDLE))
    before = Trace.of(engine)
    call = engine("run", "-d", "--name", name, "--network", "none", BUSYBOX, *sh(IDLE),
                  check=False)  # fmt: skip
    expect_engine_error(call, "run --name with a name in use", "failed to", name)
    assert_unchanged(before, engine, "a refused run --name")
    holder = engine.inspect(first)
    assert holder.running and holder.get("Name") == f"/{name}", "the name's holder was disturbed"


def test_bad_port_specs_are_refused(engine: Engine) -> None:
    bad = (
        "abc", "70000:80", "8080:", "8080:80/sctp",
        "0.0.0.0:8080:80",  # not loopback: the engine publishes on the host's loopback only
        "192.0.2.1:8080:80",
    )  # fmt: skip
    before = Trace.of(engine)
    for spec in bad:
        call = engine("run", "-d", "-p", spec, BUSYBOX, *sh(IDLE), check=False)
        expect_engine_error(call, f"run -p {spec}", "failed to", "port")
    assert_unchanged(before, engine, "refused port specs")
    port = free_port()
    engine.run_detached("-p", f"{port}:80/tcp", BUSYBOX, *sh(IDLE))  # the control
    assert listening_on(port)


@contextlib.contextmanager
def loaded(engine: Engine, layout: Path, ref: str) -> Iterator[None]:
    """The control: a good image loads (and is removed again)."""
    call = engine("image", "load", "-i", str(layout))
    assert f"Loaded image: {ref}" in call.stdout.splitlines(), call.stdout
    try:
        yield
    finally:
        engine("image", "rm", ref, cleanup=True)


def test_hostile_layers_are_refused_and_nothing_escapes(engine: Engine, scratch: Path) -> None:
    # The layers aim out of the layer at a canary directory of the test's own (a symlink to it, an
    # absolute member under it), never at the host's /etc: a broken engine writes only there.
    canary = scratch / "canary"
    canary.mkdir()
    (canary / "control").write_text("seen")  # the control: what lands here is listed below
    targets = [canary / "pwned", canary / "abs"]
    assert sorted(os.listdir(canary)) == ["control"]
    before = Trace.of(engine)
    accepted = []
    for kind in images.HOSTILE_KINDS:
        ref = f"bulkhead/hostile-{kind}:test"
        hostile = images.hostile_image(kind, aim=str(canary))
        layout = images.write_oci_layout(hostile, scratch / kind, ref)
        call = engine("image", "load", "-i", str(layout), check=False)
        if call.returncode == 0:
            accepted.append(kind)
            continue
        expect_engine_error(call, f"image load of the {kind} image", "failed to load image")
        assert_unchanged(before, engine, f"a refused load of the {kind} image")
        escaped = [str(t) for t in targets if os.path.lexists(t)]
        assert not escaped, f"the {kind} image wrote {escaped} outside its layer"
        assert sorted(os.listdir(canary)) == ["control"], f"the {kind} image wrote into {canary}"
    assert not accepted, f"hostile images loaded: {accepted}"
    benign = images.write_oci_layout(benign_image(), scratch / "benign", BENIGN_REF)
    with loaded(engine, benign, BENIGN_REF):
        pass
    assert_unchanged(before, engine, "loading and removing the control image")


def test_tampered_images_are_refused(engine: Engine, scratch: Path) -> None:
    before = Trace.of(engine)
    cases = [(kind, "oci") for kind in images.TAMPER_KINDS]
    cases += [(kind, "docker") for kind in ("layer-digest", "config-digest")]
    accepted = []
    for kind, form in cases:
        if form == "oci":
            path = images.write_oci_layout(benign_image(), scratch / kind, BENIGN_REF)
        else:
            path = images.write_docker_archive(benign_image(), scratch / f"{kind}.tar", BENIGN_REF)
        images.tamper(path, kind)
        call = engine("image", "load", "-i", str(path), check=False)
        if call.returncode == 0:
            accepted.append(f"{kind} ({form})")
            with contextlib.suppress(AssertionError):
                engine("image", "rm", BENIGN_REF, cleanup=True)
            continue
        expect_engine_error(call, f"image load with a bad {kind} ({form})", "failed to load image")
        assert_unchanged(before, engine, f"a refused load with a bad {kind} ({form})")
    assert not accepted, f"tampered images loaded: {accepted}"
    for form in ("oci", "docker"):
        if form == "oci":
            path = images.write_oci_layout(benign_image(), scratch / "good", BENIGN_REF)
        else:
            path = images.write_docker_archive(benign_image(), scratch / "good.tar", BENIGN_REF)
        with loaded(engine, path, BENIGN_REF):
            pass
    assert_unchanged(before, engine, "loading and removing the control images")


def test_a_full_disk_under_the_root_fails_in_one_line(bulkhead_suite: Suite, scratch: Path) -> None:
    small = new_engine(bulkhead_suite, "full")
    small.root.mkdir()
    # A small tmpfs of the test's own as the engine's root: its disk, easy to fill.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "bulkhead-full",
                    str(small.root)], check=True)  # fmt: skip
    try:
        busybox = images.write_oci_layout(images.busybox_test_image(), scratch / "bb", BUSYBOX)
        benign = images.write_oci_layout(benign_image(), scratch / "benign", BENIGN_REF)
        small("image", "load", "-i", str(busybox))
        # The control for run, before the disk is full: it works on this root (and whatever
        # the engine makes once, on a first run, is there before the trace).
        expect_ok(small("run", "--rm", "--network", "none", BUSYBOX, "true", check=False), "run")
        filler = fill(small.root)
        before = Trace.of(small)
        run = small("run", "--network", "none", BUSYBOX, "true", check=False)
        expect_engine_error(run, "run on a full disk", "failed to", "no space left on device")
        assert_unchanged(before, small, "a run that found the disk full")
        load = small("image", "load", "-i", str(benign), check=False)
        expect_engine_error(load, "image load on a full disk", "failed to", "no space left")
        assert_unchanged(before, small, "an image load that found the disk full")
        # The control for image load: with room again, the same load works.
        filler.unlink()
        expect_ok(small("image", "load", "-i", str(benign), check=False), "image load")
    finally:
        problems = close_engine(small, keep=(small.root,))
        subprocess.run(["umount", str(small.root)], check=False)
        for path in (small.root, small.exec_root):
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
    assert not problems, "the small engine left: " + "; ".join(problems)
