"""The errors the suite's machinery raises, in one small hierarchy."""

from __future__ import annotations


class BulkheadError(Exception):
    """Base of every error raised by Bulkhead's own code."""


class UsageError(BulkheadError):
    """Bad input from the person running the suite (an option, a runtime path, a file)."""


class UnknownRequirement(BulkheadError):
    """A ``requires(...)`` marker names a requirement nobody defined: a typo must not skip."""


class SetupError(BulkheadError):
    """The host cannot provide what the suite needs (a tool missing, a mount refused)."""
