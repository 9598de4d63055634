"""``bulkhead certify``: run everything this host allows against a runtime, then write what a
node's owner reads: ``certificate.json``, ``certificate.md`` and the HTML report.

The suite runs in a subprocess (``python -m pytest --pyargs conformance``, the installed suite,
in the output directory so no project's pytest configuration applies) with the JSON lines,
HTML, Markdown and JUnit reports; the certificate is then built from the JSON lines alone, so
it can be rebuilt from a kept report (``build_certificate``).

Each core requirement (bulkhead.catalogue) gets one verdict: ``met``; ``deviation`` (a known,
reasoned deviation held: the reason is given); ``failed``; ``not runnable here`` (every test
naming it was skipped: the host's reason is given); ``not covered`` (no test in the run names
it). The overall verdict is ``failed`` when any test failed, ``met with deviations`` when a
deviation held, else ``met``; ``incomplete`` when pytest itself did not finish (exit code
other than 0 and 1).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bulkhead import catalogue
from bulkhead.options import DEFAULT_PROFILE
from bulkhead.results import Results, TestResult

CERTIFICATE_VERSION = 1
RESULTS = "results.jsonl"
REPORT = "report.html"
SUMMARY = "summary.md"
JUNIT = "junit.xml"
_RANK = {"failed": 4, "deviation": 3, "met": 1, "not runnable here": 0}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def distribution(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        text = os_release.read_text()
    except OSError:
        return "unknown"
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    return fields.get("PRETTY_NAME", fields.get("NAME", "unknown")).strip().strip('"')


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    model = platform.machine()
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count() or '?'} CPUs, {platform.machine()})"


def host_facts() -> dict[str, str]:
    from bulkhead.host import probe_host

    host = probe_host()
    return {
        "kernel": host.kernel,
        "distribution": distribution(),
        "cgroups": host.cgroups.describe(),
        "cgroup_mode": host.cgroups.mode,
        "cpu": cpu(),
    }


def runtime_facts(name: str) -> dict[str, str]:
    from bulkhead.runtime import RuntimeClient
    from bulkhead.suite import resolve_binary

    binary = resolve_binary(name)
    version = RuntimeClient(binary, root=Path("/nonexistent")).version()
    return {
        "name": binary.name if name != "reference" else "reference (bulkhead-runtime)",
        "path": str(binary),
        "version": version,
        "sha256": sha256(binary.resolve()),
    }


def _requirement_verdict(tests: Sequence[TestResult], in_suite: bool) -> tuple[str, str]:
    """(verdict, reason) of one requirement from the tests that name it."""
    if not tests:
        if in_suite:
            return "not covered", "the suite has tests for it, but this run selected none"
        return "not covered", "no test of the suite names it yet"
    by: dict[str, list[TestResult]] = defaultdict(list)
    for test in tests:
        verdict = {
            "failed": "failed",
            "deviation": "deviation",
            "met": "met",
            "fixed": "met",
            "not run": "not runnable here",
        }[test.verdict]
        by[verdict].append(test)
    worst = max(by, key=lambda v: _RANK[v])
    if worst == "met":
        return "met", ""
    reasons = list(dict.fromkeys(f"{t.nodeid}: {t.message}" for t in by[worst]))
    return worst, "; ".join(reasons)


def build_certificate(
    results: Results,
    runtime: Mapping[str, str],
    host: Mapping[str, str],
    suite_version: str,
    pytest_exit: int | None = None,
    pytest_args: Sequence[str] = (),
    suite_ids: set[str] | None = None,
    profile: str = DEFAULT_PROFILE,
) -> dict[str, Any]:
    """``suite_ids``: the ids the installed suite's tests name (bulkhead.coverage), to tell a
    requirement the suite cannot check yet from one this run did not select. ``profile``: the
    --spec-profile the run used (a verdict under runc-compatible is not one under strict)."""
    core = catalogue.core()
    suite_ids = suite_ids if suite_ids is not None else set()
    naming: dict[str, list[TestResult]] = defaultdict(list)
    for test in results.ordered():
        for named in test.spec:
            naming[named].append(test)
    requirements = []
    tally: dict[str, int] = defaultdict(int)
    files: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sections: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for req_id, req in core.items():
        verdict, reason = _requirement_verdict(naming.get(req_id, []), req_id in suite_ids)
        if verdict == "not covered" and req_id in suite_ids:
            tally["not selected"] += 1
        tally[verdict] += 1
        for bucket in (files[req.file], sections[(req.file, req.section)]):
            bucket["core"] += 1
            bucket["covered"] += verdict != "not covered"
            bucket[verdict] += 1
        requirements.append(
            {
                "id": req_id,
                "file": req.file,
                "section": req.section,
                "summary": req.summary,
                "verdict": verdict,
                "reason": reason,
                "tests": [t.nodeid for t in naming.get(req_id, [])],
            }
        )
    if pytest_exit not in (None, 0, 1):
        overall = "incomplete"
    elif results.failures() or tally["failed"]:
        overall = "failed"
    elif tally["deviation"] or results.counts()["xfailed"]:
        overall = "met with deviations"
    else:
        overall = "met"
    if tally["not selected"]:
        # A selection (-k, --spec-id) certifies only what it ran: say so in the verdict itself.
        overall += f" (partial run: {tally['not selected']} core requirements not selected)"
    return {
        "certificate_version": CERTIFICATE_VERSION,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "verdict": overall,
        "runtime": dict(runtime),
        "suite": {"name": "bulkhead", "version": suite_version},
        "spec_version": catalogue.SPEC_VERSION,
        "profile": profile,
        "host": dict(host),
        "run": {
            "pytest_exit": pytest_exit,
            "pytest_args": list(pytest_args),
            "tests": dict(sorted(results.counts().items())),
            "runtime_seconds": round(results.runtime_seconds(), 3),
        },
        "summary": {"core_requirements": len(core), **dict(tally)},
        "coverage": {
            "by_file": {f: dict(c) for f, c in files.items()},
            "by_section": [{"file": f, "section": s, **dict(c)} for (f, s), c in sections.items()],
        },
        "requirements": requirements,
    }


def render_markdown(cert: Mapping[str, Any]) -> str:
    rt, host, summary = cert["runtime"], cert["host"], cert["summary"]
    order = ("met", "deviation", "failed", "not runnable here", "not covered")
    out = [
        f"# Bulkhead certificate: {rt['name']}: {cert['verdict']}",
        "",
        "| | |",
        "|---|---|",
        f"| runtime | {rt['name']} ({rt['version']}) |",
        f"| binary | `{rt['path']}` sha256 `{rt['sha256']}` |",
        f"| suite | bulkhead {cert['suite']['version']}, runtime-spec {cert['spec_version']} |",
        f"| profile | {cert.get('profile', DEFAULT_PROFILE)} (see docs/profiles.md) |",
        f"| kernel | {host['kernel']} |",
        f"| distribution | {host['distribution']} |",
        f"| cgroups | {host['cgroups']} |",
        f"| CPU | {host['cpu']} |",
        f"| generated | {cert['generated']} |",
        "",
        f"**{summary['core_requirements']} core requirements**: "
        + ", ".join(f"{summary.get(v, 0)} {v}" for v in order)
        + ".",
        "",
        "## Coverage per spec file",
        "",
        "| file | core | covered | met | deviation | failed | not runnable here |",
        "|---|---|---|---|---|---|---|",
    ]
    cols = ("core", "covered", "met", "deviation", "failed", "not runnable here")
    for file, c in cert["coverage"]["by_file"].items():
        out.append(f"| {file} | " + " | ".join(str(c.get(k, 0)) for k in cols) + " |")
    out += [
        "",
        "## Coverage per section",
        "",
        "| section | core | covered | met | deviation | failed | not runnable here |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in cert["coverage"]["by_section"]:
        out.append(
            f"| {s['file']} § {s['section']} | " + " | ".join(str(s.get(k, 0)) for k in cols) + " |"
        )
    out += ["", "## Core requirements not met", ""]
    shown = [r for r in cert["requirements"] if r["verdict"] not in ("met", "not covered")]
    if not shown:
        out.append("none")
    for r in shown:
        reason = r["reason"].replace("|", "\\|").replace("\n", " ")
        out.append(f"- `{r['id']}` ({r['file']} § {r['section']}): **{r['verdict']}**: {reason}")
    uncovered = [r["id"] for r in cert["requirements"] if r["verdict"] == "not covered"]
    if uncovered:
        out += ["", f"Not covered by the tests run ({len(uncovered)}): " + ", ".join(uncovered)]
    return "\n".join(out) + "\n"


def pytest_command(
    runtime: str, out: Path, extra: Sequence[str], profile: str = DEFAULT_PROFILE
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "conformance",
        f"--runtime={runtime}",
        f"--spec-profile={profile}",
        "-p",
        "no:cacheprovider",
        f"--jsonl-report={out / RESULTS}",
        f"--html-report={out / REPORT}",
        f"--summary-report={out / SUMMARY}",
        f"--junitxml={out / JUNIT}",
        *extra,
    ]


def certify(
    runtime: str, out: Path, extra: Sequence[str] = (), profile: str = DEFAULT_PROFILE
) -> tuple[dict[str, Any], int]:
    """Runs the suite and writes the certificates; returns the certificate and pytest's exit
    code."""
    from bulkhead.disputes import check_profile
    from bulkhead.errors import UsageError
    from bulkhead.gate import suite_version

    try:
        check_profile(profile)
    except ValueError as exc:
        raise UsageError(f"failed to certify {runtime}: {exc}") from None
    if any(arg.startswith("--spec-profile") for arg in extra):
        # The certificate records the profile: it must be the one the run used.
        raise UsageError(
            f"failed to certify {runtime}: give --spec-profile to certify, not after --"
        )

    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    runtime_info = runtime_facts(runtime)
    results_file = out / RESULTS
    results_file.unlink(missing_ok=True)
    command = pytest_command(runtime, out, extra, profile)
    done = subprocess.run(command, cwd=out, check=False)
    if not results_file.is_file():
        raise RuntimeError(
            f"failed to certify {runtime}: pytest wrote no results (exit {done.returncode})"
        )
    results = Results.from_jsonl(results_file.read_text().splitlines())
    from bulkhead.coverage import named_ids

    cert = build_certificate(
        results,
        runtime_info,
        host_facts(),
        suite_version(),
        done.returncode,
        command[3:],
        named_ids(),
        profile,
    )
    (out / "certificate.json").write_text(json.dumps(cert, indent=2) + "\n")
    (out / "certificate.md").write_text(render_markdown(cert))
    return cert, done.returncode
