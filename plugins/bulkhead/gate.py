"""The gate's side of a run, behind the plugin's hooks: selection by requirement, the reports,
and the expectations baseline (docs/gate.md). Usable without pytest.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bulkhead import catalogue
from bulkhead.errors import UsageError
from bulkhead.options import REPORT_OPTIONS
from bulkhead.results import Results, RunInfo

# Option (dest) -> what it writes.
REPORTS = dict(
    zip(
        REPORT_OPTIONS,
        ("TAP report", "JSON lines report", "Markdown summary", "HTML report"),
        strict=True,
    )
)


def selection(ids: Iterable[str], sections: Iterable[str]) -> frozenset[str] | None:
    """The requirement ids ``--spec-id`` / ``--spec-section`` ask for; None when neither is
    given (every test runs)."""
    ids, sections = list(ids), list(sections)
    if not ids and not sections:
        return None
    try:
        return frozenset(catalogue.select(ids, sections))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def selected(test_ids: Iterable[str], chosen: frozenset[str] | None) -> bool:
    """Whether a test naming ``test_ids`` runs under the selection ``chosen``."""
    return chosen is None or any(i in chosen for i in test_ids)


def suite_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("bulkhead")
    except metadata.PackageNotFoundError:
        return "unknown"


def render(kind: str, results: Results, info: RunInfo) -> str:
    from bulkhead import report_formats

    if kind == "bulkhead_tap_report":
        return report_formats.render_tap(results)
    if kind == "bulkhead_jsonl_report":
        return report_formats.render_jsonl(results)
    if kind == "bulkhead_summary_report":
        return report_formats.render_markdown(results, info)
    if kind == "bulkhead_html_report":
        from bulkhead.report_html import render_html

        return render_html(results, info)
    raise KeyError(kind)


def write_reports(results: Results, info: RunInfo, targets: Mapping[str, str]) -> list[str]:
    """Writes every report asked for; returns a line per file written."""
    from bulkhead.report_formats import write

    lines = []
    for kind, target in targets.items():
        if target:
            path = write(target, render(kind, results, info))
            lines.append(f"{REPORTS[kind]} written to {path}")
    return lines


# --- the expectations baseline ----------------------------------------------------------------


@dataclass(frozen=True)
class BaselineEntry:
    test: str
    reason: str
    spec: str


def entry_name(nodeid: str) -> str:
    """A node id as an expectations entry names it: the module's file name and the rest
    (``conformance/test_x.py::test_y[a/b]`` -> ``test_x.py::test_y[a/b]``), which matches the
    suite wherever it is installed."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def baseline_entries(results: Results) -> list[BaselineEntry]:
    """Today's failures and deviations, one entry each."""
    out = []
    for test in results.ordered():
        if test.outcome not in ("failed", "error", "xfailed"):
            continue
        what = "known deviation" if test.outcome == "xfailed" else test.outcome
        reason = f"{what} when the baseline was written: {test.message}".strip()
        if len(reason) > 300:
            reason = reason[:297] + "..."
        spec = " ".join(test.spec) or "unknown"
        out.append(BaselineEntry(entry_name(test.nodeid), reason, spec))
    return out


def _toml(value: str) -> str:
    # A TOML basic string is a JSON string without the few escapes TOML lacks (\/ is not
    # produced by json.dumps); control characters are escaped by both alike.
    return json.dumps(value, ensure_ascii=False)


def render_baseline(
    results: Results, runtime: str, version: tuple[int, ...] | None, suite: str
) -> str:
    shown = ".".join(map(str, version)) if version else "an unknown version"
    today = datetime.date.today().isoformat()
    lines = [
        f"# Expectations baseline for {runtime} {shown}, written by bulkhead {suite} on {today}",
        "# (--write-expectations). Each entry is a test that failed or deviated then; entries",
        "# are non-strict (strict = false): a new failure fails the gate, a test that passes",
        "# again is reported as fixed, and its entry should then be removed.",
        "# Use it with --expectations=FILE.",
        "",
    ]
    for entry in baseline_entries(results):
        lines += [
            "[[expect]]",
            f"test = {_toml(entry.test)}",
            f"reason = {_toml(entry.reason)}",
            f"spec = {_toml(entry.spec)}",
        ]
        if version:
            lines.append(f'versions = ">={shown}"')
        lines += ["strict = false", ""]
    return "\n".join(lines)


def write_baseline(
    path: str | Path,
    results: Results,
    runtime: str,
    version: tuple[int, ...] | None,
) -> tuple[Path, int]:
    target = Path(path)
    text = render_baseline(results, runtime, version, suite_version())
    target.write_text(text)
    return target, len(baseline_entries(results))
