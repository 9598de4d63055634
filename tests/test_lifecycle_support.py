"""The refusal helpers of conformance/_support.py, on recorded calls (no runtime runs)."""

from __future__ import annotations

import signal

import pytest

from bulkhead.runtime import Call
from conformance._support import expect_refusal, expect_success, refused


def call(returncode: int, stderr: str = "") -> Call:
    return Call(("rt", "--root", "/r", "state", "x"), returncode, "", stderr, 0.01)


def test_an_exit_with_a_status_is_a_refusal() -> None:
    assert refused(call(1))
    assert refused(call(255))
    assert not refused(call(0))


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL])
def test_a_death_by_a_signal_is_neither_refusal_nor_success(signum: signal.Signals) -> None:
    # subprocess reports a death by signal N as returncode -N.
    crashed = call(-signum, stderr="fatal error")
    for check in (refused, lambda c: expect_refusal(c, "x"), lambda c: expect_success(c, "x")):
        with pytest.raises(
            AssertionError, match=rf"crashed with signal {signum} \({signum.name}\)"
        ):
            check(crashed)


def test_expectations_name_what_was_asked() -> None:
    with pytest.raises(AssertionError, match="state of an unknown id: the runtime answered"):
        expect_refusal(call(0), "state of an unknown id")
    with pytest.raises(AssertionError, match=r"the control was refused \(exit 1\): no such"):
        expect_success(call(1, "no such container"), "the control")
    expect_refusal(call(1), "fine")
    expect_success(call(0), "fine")
