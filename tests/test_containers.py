"""Container and ContainerFactory bookkeeping without a runtime: what a wait that times out
says, and which bundles --keep-failed keeps (fakes stand in for the client; no mounts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkhead.bundle import Bundle
from bulkhead.containers import BundleRecord, Container, ContainerFactory, poll
from bulkhead.rootfs import RootfsImage
from bulkhead.runtime import CallLog
from bulkhead.spec import State


class StuckClient:
    """Answers ``state`` with a running container, always."""

    def __init__(self) -> None:
        self.log = CallLog()

    def state(self, container_id: str) -> State:
        state = {"ociVersion": "1.0.2", "id": container_id, "status": "running", "pid": 4242}
        return State.model_validate({**state, "bundle": "/b"})


def test_a_wait_for_timeout_says_the_last_status_and_quotes_the_containers_stderr(
    tmp_path: Path,
) -> None:
    (tmp_path / "stderr").write_text("exec: /bin/nope: no such file or directory\n")
    ctr = Container("c1", Bundle(tmp_path, RootfsImage(tmp_path)), StuckClient())  # type: ignore[arg-type]
    with pytest.raises(TimeoutError) as info:
        ctr.wait_for("stopped", timeout=0.05)
    assert str(info.value) == (
        "timed out after 0.05 s waiting for container c1 to be stopped; last status seen: "
        f"running (pid 4242); container stderr ({tmp_path / 'stderr'}): "
        "exec: /bin/nope: no such file or directory"
    )


def test_a_wait_for_without_stderr_says_so(tmp_path: Path) -> None:
    ctr = Container("c1", Bundle(tmp_path, RootfsImage(tmp_path)), StuckClient())  # type: ignore[arg-type]
    with pytest.raises(TimeoutError, match=r"container stderr \(.*\): empty$"):
        ctr.wait_for("stopped", timeout=0.01)


def test_poll_reports_what_it_observed() -> None:
    with pytest.raises(TimeoutError, match="waiting for x; saw y"):
        poll(lambda: None, timeout=0.01, what="x", observed=lambda: "saw y")


def factory(tmp_path: Path) -> ContainerFactory:
    client: Any = StuckClient()
    return ContainerFactory(client, RootfsImage(tmp_path), tmp_path, "bh-x", keep_failed=True)


def pending(f: ContainerFactory, tmp_path: Path, name: str, example: int | None) -> Path:
    path = tmp_path / name
    path.mkdir()
    f.pending.append(BundleRecord(name, path, "{}", "", "", example))
    return path


def test_settle_keeps_a_failed_tests_bundles_of_the_final_example_only(tmp_path: Path) -> None:
    f = factory(tmp_path)
    early = pending(f, tmp_path, "b1", example=1)
    final = [pending(f, tmp_path, "b2", example=2), pending(f, tmp_path, "b3", example=2)]
    assert f.settle(failed=True) == final
    assert not early.exists() and all(p.is_dir() for p in final)
    assert f.kept == final and f.pending == []


def test_settle_of_a_passed_test_removes_its_bundles(tmp_path: Path) -> None:
    f = factory(tmp_path)
    path = pending(f, tmp_path, "b1", example=None)
    assert f.settle(failed=False) == []
    assert not path.exists() and f.kept == []


def test_begin_forgets_the_previous_test(tmp_path: Path) -> None:
    f = factory(tmp_path)
    path = pending(f, tmp_path, "b1", example=None)
    f.records.append(f.pending[0])
    f.begin()
    assert f.records == [] and f.pending == [] and not path.exists()


def test_a_record_describes_stdio_and_config(tmp_path: Path) -> None:
    record = BundleRecord("c1", tmp_path, '{"ociVersion": "1.0.2"}', "out\n", "err\n")
    text = record.describe(kept=True)
    assert text.splitlines() == [
        f"container c1: bundle kept at {tmp_path}",
        "  stdout: out",
        "  stderr: err",
        "  config.json: {",
        '    "ociVersion": "1.0.2"',
        "  }",
    ]
