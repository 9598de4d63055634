"""The gate's text reports: TAP, JSON lines and the Markdown summary (see docs/gate.md).

- TAP version 13, as runtime-tools' validation tests print it: ``ok N - name``, skips as
  ``# SKIP reason``, a known deviation as ``not ok N - name # TODO reason`` (a TODO failure does
  not fail a TAP harness), and a YAML block under each failure; the plan ``1..N`` comes last.
- JSON lines: one object per test (nodeid, outcome, verdict, spec ids, duration, message, and the
  runtime calls with argv, exit code, duration, stdout and stderr).
- Markdown: the verdict, the counts, the runtime's share of the wall time, the --spec-profile
  (bulkhead.disputes), each failure with the spec section and sentence it breaks, and the
  requirements no collected test covers; what a CI job shows as its summary
  ($GITHUB_STEP_SUMMARY).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bulkhead import catalogue, disputes
from bulkhead.results import Results, RunInfo, TestResult

_COUNT_WORDS = (
    ("failed", "failed"),
    ("error", "errored"),
    ("passed", "passed"),
    ("xfailed", "known deviations"),
    ("xpassed", "fixed (expected to fail)"),
    ("skipped", "not runnable here"),
)


def counts_line(results: Results) -> str:
    counts = results.counts()
    parts = [f"{counts[k]} {word}" for k, word in _COUNT_WORDS if counts[k]]
    return ", ".join(parts) or "no tests"


# --- TAP ------------------------------------------------------------------------------------


def _tap_escape(text: str) -> str:
    # '#' starts a directive in TAP; a parametrised node id may hold one.
    return text.replace("\\", "\\\\").replace("#", "\\#").replace("\n", " ")


def _yaml_block(test: TestResult) -> list[str]:
    lines = ["  ---", f"  nodeid: {json.dumps(test.nodeid)}", f"  outcome: {test.outcome}"]
    if test.spec:
        lines.append("  spec: [" + ", ".join(test.spec) + "]")
    text = (test.details or test.message).rstrip()
    if text:
        lines.append("  message: |")
        lines += [f"    {line}" for line in text.splitlines()]
    lines.append("  ...")
    return lines


def render_tap(results: Results) -> str:
    lines = ["TAP version 13"]
    tests = results.ordered()
    for n, test in enumerate(tests, 1):
        name = _tap_escape(test.nodeid)
        reason = _tap_escape(test.message)
        if test.outcome == "passed":
            lines.append(f"ok {n} - {name}")
        elif test.outcome == "skipped":
            lines.append(f"ok {n} - {name} # SKIP {reason}")
        elif test.outcome == "xfailed":
            lines.append(f"not ok {n} - {name} # TODO known deviation: {reason}")
        elif test.outcome == "xpassed":
            lines.append(f"ok {n} - {name} # TODO fixed, remove the expectation: {reason}")
        else:
            lines.append(f"not ok {n} - {name}")
            lines += _yaml_block(test)
    lines.append(f"1..{len(tests)}")
    return "\n".join(lines) + "\n"


# --- JSON lines -----------------------------------------------------------------------------


def render_jsonl(results: Results) -> str:
    return "".join(json.dumps(t.as_json(), sort_keys=True) + "\n" for t in results.ordered())


# --- Markdown -------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def requirement_line(req_id: str) -> str:
    """``runtime.state.1`` ([runtime.md § State](url)): the sentence."""
    req = catalogue.load().get(req_id)
    if req is None:
        return f"`{req_id}` (not in the runtime-spec {catalogue.SPEC_VERSION} catalogue)"
    return f"`{req_id}` ([{req.where}]({req.url})): {_md(req.summary)}"


def uncovered(results: Results, selected: Iterable[str] | None) -> list[str]:
    """The requirements no collected test names: of the selection if there is one, else of the
    core requirements."""
    wanted = set(selected) if selected is not None else set(catalogue.core())
    return catalogue.in_order(wanted - results.covered())


def verdict_word(results: Results) -> str:
    counts = results.counts()
    if results.overall() == "failed":
        return "FAILED"
    if counts["xfailed"]:
        return "met, with known deviations"
    return "met"


def render_markdown(results: Results, info: RunInfo) -> str:
    out = [
        f"## Bulkhead conformance: {_md(info.title)}: {verdict_word(results)}",
        "",
        f"**{counts_line(results)}** in {info.wall_seconds:.1f} s; {info.runtime_share(results)}.",
        "",
        f"Profile: {_md(disputes.describe(info.profile))}.",
        "",
    ]
    reqs = results.requirement_verdicts()
    if reqs:
        tally: dict[str, int] = {}
        for verdict in reqs.values():
            tally[verdict] = tally.get(verdict, 0) + 1
        order = ("failed", "deviation", "fixed", "met", "not run")
        parts = [f"{tally[v]} {v}" for v in order if tally.get(v)]
        out += [
            f"Runtime-spec {catalogue.SPEC_VERSION} requirements named by the tests run: "
            f"{len(reqs)} ({', '.join(parts)}).",
            "",
        ]
    failures = results.failures()
    if failures:
        out += [f"### Failures ({len(failures)})", ""]
        for test in failures:
            out.append(f"- **`{_md(test.nodeid)}`** ({test.outcome}): {_md(test.message)}")
            for req_id in test.spec:
                out.append(f"  - breaks {requirement_line(req_id)}")
        out.append("")
    fixed = [t for t in results.ordered() if t.outcome == "xpassed"]
    if fixed:
        out += [
            f"### Fixed: expected to fail, now passing ({len(fixed)})",
            "",
            "Remove these entries from the expectations file:",
            "",
        ]
        out += [f"- `{_md(t.nodeid)}` ({_md(t.message)})" for t in fixed]
        out.append("")
    deviations = [t for t in results.ordered() if t.outcome == "xfailed"]
    if deviations:
        out += [f"### Known deviations ({len(deviations)})", ""]
        out += [f"- `{_md(t.nodeid)}`: {_md(t.message)}" for t in deviations]
        out.append("")
    missing = uncovered(results, info.selected)
    if missing:
        of = "selected" if info.selected is not None else "core"
        out += [
            f"### {of.capitalize()} requirements no collected test covers ({len(missing)})",
            "",
            "<details><summary>the list</summary>",
            "",
        ]
        out += [f"- {requirement_line(i)}" for i in missing]
        out += ["", "</details>", ""]
    if info.expectations:
        out += [f"Expectations: {_md(info.expectations)}.", ""]
    return "\n".join(out)


def write(path: str | Path, text: str) -> Path:
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target
