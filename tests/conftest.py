"""Fixtures the tests of the plugin share (inner pytest sessions need pytester, which each of
those modules enables itself)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def fake_runtime(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime binary that can only tell its version; the environment names no other."""
    monkeypatch.delenv("OCI_RUNTIME", raising=False)
    monkeypatch.delenv("RUNTIME", raising=False)
    path = pytester.path / "fake-runtime"
    path.write_text('#!/bin/sh\necho "fake-runtime version 9.9"\n')
    path.chmod(0o755)
    return path
