"""A self-contained HTML report (one file, inline style, no script, nothing fetched) that a
person can open from a CI artifact: the verdict, the host facts, a verdict per spec section,
each failure with its runtime calls, and every test."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from bulkhead import catalogue, disputes
from bulkhead.report_formats import counts_line, uncovered, verdict_word
from bulkhead.results import Results, RunInfo, TestResult

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f4f4f4}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.5em;overflow-x:auto;white-space:pre-wrap}
.failed,.error{color:#b00020;font-weight:600}.met,.passed{color:#1b6e20}
.deviation,.xfailed,.fixed,.xpassed{color:#8a5a00}.not-run,.skipped{color:#666}
code{font-size:.95em}
"""
_RANK = {"failed": 4, "deviation": 3, "fixed": 2, "met": 1, "not run": 0}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cls(word: str) -> str:
    return word.replace(" ", "-")


def section_verdicts(verdicts: Mapping[str, str]) -> list[tuple[str, str, str, dict[str, int]]]:
    """(file, section, url, tally of verdicts) for every spec section a run named, in the
    spec's order."""
    known = catalogue.load()
    tallies: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    urls: dict[tuple[str, str], str] = {}
    for req_id in catalogue.in_order(verdicts):
        req = known.get(req_id)
        key = (req.file, req.section) if req else ("(unknown)", req_id.rsplit(".", 1)[0])
        urls[key] = req.url if req else ""
        tallies[key][verdicts[req_id]] += 1
    return [(f, s, urls[(f, s)], dict(t)) for (f, s), t in tallies.items()]


def _worst(tally: Mapping[str, int]) -> str:
    return max(tally, key=lambda v: _RANK[v]) if tally else "not run"


def _call_block(calls: Iterable[Mapping[str, Any]]) -> str:
    lines = []
    for call in calls:
        head = "$ " + " ".join(call["argv"]) + ("    (cleanup)" if call.get("cleanup") else "")
        lines.append(head)
        lines.append(f"  exit {call['exit']} after {float(call['duration']) * 1000:.0f} ms")
        for name in ("stdout", "stderr"):
            if call.get(name):
                lines.append(f"  {name}: " + str(call[name]).replace("\n", "\n          "))
    return "<pre>" + _e("\n".join(lines)) + "</pre>" if lines else "<p>no runtime calls</p>"


def _failure(test: TestResult) -> str:
    known = catalogue.load()
    reqs = []
    for req_id in test.spec:
        req = known.get(req_id)
        if req is None:
            reqs.append(f"<li><code>{_e(req_id)}</code></li>")
        else:
            reqs.append(
                f'<li><code>{_e(req_id)}</code> (<a href="{_e(req.url)}">{_e(req.where)}</a>, '
                f"{_e(req.level)}): {_e(req.summary)}</li>"
            )
    return (
        f'<h3 class="{_e(test.outcome)}">{_e(test.nodeid)} ({_e(test.outcome)})</h3>'
        f"<p>{_e(test.message)}</p><ul>{''.join(reqs)}</ul>"
        f"<details><summary>failure text</summary><pre>{_e(test.details)}</pre></details>"
        f"<h4>runtime calls</h4>{_call_block(test.calls)}"
    )


def render_html(results: Results, info: RunInfo) -> str:
    verdict = verdict_word(results)
    head_cls = "failed" if results.overall() == "failed" else "met"
    facts = [
        ("runtime", info.title),
        ("runtime binary", info.runtime_path),
        ("suite", f"bulkhead {info.suite_version}".strip()),
        ("runtime-spec", catalogue.SPEC_VERSION),
        ("expectations", info.expectations),
        ("profile", disputes.describe(info.profile)),
        ("wall time", f"{info.wall_seconds:.1f} s ({info.workers} worker(s))"),
        ("runtime's share", info.runtime_share(results)),
        *(("host", line) for line in info.host),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Bulkhead: {_e(info.title)}: {_e(verdict)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<h1>Bulkhead conformance of {_e(info.title)}: <span class="{head_cls}">'
        f"{_e(verdict)}</span></h1>",
        f"<p>{_e(counts_line(results))}</p>",
        "<h2>Run and host</h2><table>",
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v),
        "</table>",
        "<h2>Verdict per spec section</h2>",
        "<table><tr><th>file</th><th>section</th><th>verdict</th><th>requirements</th></tr>",
    ]
    for file, section, url, tally in section_verdicts(results.requirement_verdicts()):
        worst = _worst(tally)
        link = f'<a href="{_e(url)}">{_e(section)}</a>' if url else _e(section)
        shown = ", ".join(f"{n} {v}" for v, n in sorted(tally.items(), key=lambda i: -_RANK[i[0]]))
        parts.append(
            f'<tr><td>{_e(file)}</td><td>{link}</td><td class="{_cls(worst)}">{_e(worst)}</td>'
            f"<td>{_e(shown)}</td></tr>"
        )
    parts.append("</table>")
    failures = results.failures()
    parts.append(f"<h2>Failures ({len(failures)})</h2>")
    parts += [_failure(t) for t in failures] or ["<p>none</p>"]
    parts.append("<h2>Every test</h2>")
    parts.append(
        "<table><tr><th>test</th><th>outcome</th><th>spec ids</th><th>duration</th>"
        "<th>runtime calls</th><th>note</th></tr>"
    )
    for t in results.ordered():
        parts.append(
            f'<tr><td><code>{_e(t.nodeid)}</code></td><td class="{_e(t.outcome)}">'
            f"{_e(t.outcome)}</td><td>{_e(' '.join(t.spec))}</td><td>{t.duration:.2f} s</td>"
            f"<td>{len(t.calls)} ({t.runtime_seconds:.2f} s)</td>"
            f"<td>{_e(t.message if t.outcome != 'passed' else '')}</td></tr>"
        )
    parts.append("</table>")
    missing = uncovered(results, info.selected)
    if missing:
        known = catalogue.load()
        of = "selected" if info.selected is not None else "core"
        parts.append(
            f"<h2>{of.capitalize()} requirements no collected test covers ({len(missing)})</h2><ul>"
        )
        for req_id in missing:
            req = known.get(req_id)
            text = f"{req.where}: {req.summary}" if req else ""
            parts.append(f"<li><code>{_e(req_id)}</code> {_e(text)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
