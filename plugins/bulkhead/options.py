"""Names the command line and the library share, kept in a module that imports nothing, so the
plugin can declare its options without loading the machinery behind them."""

from __future__ import annotations

HIDE_CHOICES = ("auto", "yes", "no")
DEFAULT_TIMEOUT = 30.0
# The console script of Bulkhead's reference runtime, installed beside the interpreter.
REFERENCE_SCRIPT = "bulkhead-runtime"
