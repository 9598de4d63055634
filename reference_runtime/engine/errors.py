"""The engine's one error type: what the CLI prints as one line, then exits 125 (as docker does)."""

from __future__ import annotations


class EngineError(Exception):
    """A refusal or failure the user can act on. ``str(error)`` is the whole message and reads
    "failed to <verb> <object>: <reason>"; no traceback reaches the user."""
