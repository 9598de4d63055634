"""The parent/child protocol: typed, ordered messages; a child's error crosses as errno+text."""

from __future__ import annotations

import errno
import os

from reference_runtime.errors import SyscallError
from reference_runtime.process import protocol


def test_messages_arrive_in_order_one_at_a_time() -> None:
    r, w = os.pipe()
    protocol.send(w, protocol.PID, "42")
    protocol.send(w, protocol.MOUNTED)
    protocol.send(w, protocol.READY)
    os.close(w)
    reader = protocol.Reader(r)
    assert reader.next() == ["pid", "42"]
    assert reader.next() == ["mounted"]
    assert reader.next() == ["ready"]
    assert reader.next() is None
    os.close(r)


def test_a_child_error_becomes_an_init_error_with_its_errno() -> None:
    r, w = os.pipe()
    protocol.send_error(w, SyscallError(errno.ENOENT, "mount", "/srv/x\twith tab"))
    os.close(w)
    outcome = protocol.Outcome(protocol.receive_all(r))
    os.close(r)
    assert outcome.error is not None
    assert outcome.error.errno == errno.ENOENT
    assert str(outcome.error) == "mount /srv/x with tab: No such file or directory"
    assert not outcome.ready


def test_an_outcome_collects_pid_and_readiness() -> None:
    outcome = protocol.Outcome([["pid", "7"], ["ready"]])
    assert (outcome.pid, outcome.ready, outcome.error) == (7, True, None)
