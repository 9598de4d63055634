"""Names the command line and the library share, kept in a module that imports nothing, so the
plugin can declare its options without loading the machinery behind them."""

from __future__ import annotations

HIDE_CHOICES = ("auto", "yes", "no")
DEFAULT_TIMEOUT = 30.0
# The console script of Bulkhead's reference runtime, installed beside the interpreter.
REFERENCE_SCRIPT = "bulkhead-runtime"
# The gate's report options (dest names), read on every test report: kept here so that a run of
# another project's tests, which asks for none, imports nothing to find that out.
REPORT_OPTIONS = (
    "bulkhead_tap_report",
    "bulkhead_jsonl_report",
    "bulkhead_summary_report",
    "bulkhead_html_report",
)
# The profiles for the behaviours runtimes dispute (bulkhead.disputes, docs/profiles.md): strict
# asserts the spec's words, runc-compatible also accepts what runc does on those points.
PROFILES = ("strict", "runc-compatible")
DEFAULT_PROFILE = "strict"
