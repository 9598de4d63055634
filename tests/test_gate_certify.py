"""``bulkhead --version`` and ``bulkhead certify``: the certificate built from a run's JSON lines
(the suite run itself is replaced by one that writes known results)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bulkhead import catalogue, certify, cli
from bulkhead.results import Results, TestResult

RUNTIME = {"name": "runc", "path": "/usr/sbin/runc", "version": "runc version 1.1.5",
           "sha256": "ab" * 32}  # fmt: skip
HOST = {
    "kernel": "6.1.0",
    "distribution": "Debian GNU/Linux 12 (bookworm)",
    "cgroups": "hybrid; v1: pids",
    "cgroup_mode": "hybrid",
    "cpu": "EPYC (2 CPUs, x86_64)",
}


def results() -> Results:
    r = Results()
    for test in (
        TestResult("t::met", "passed", ["runtime.state.1", "runtime.state.2"]),
        TestResult("t::dev", "xfailed", ["runtime.delete.3"], message="runc: deletes created"),
        TestResult("t::met2", "passed", ["runtime.delete.3"]),
        TestResult("t::skip", "skipped", ["runtime.kill.1"], message="no cgroup2 mount"),
        TestResult("t::fixed", "xpassed", ["runtime.start.1"], message="baseline"),
    ):
        r.tests[test.nodeid] = test
    return r


def verdicts(cert: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["verdict"], r["reason"]) for r in cert["requirements"]}


def test_each_core_requirement_gets_a_verdict_with_its_reason() -> None:
    everything = set(catalogue.core())
    cert = certify.build_certificate(results(), RUNTIME, HOST, "0.1.0", 0, (), everything)
    v = verdicts(cert)
    assert v["runtime.state.1"] == ("met", "")
    assert v["runtime.delete.3"] == ("deviation", "t::dev: runc: deletes created")
    assert v["runtime.kill.1"] == ("not runnable here", "t::skip: no cgroup2 mount")
    assert v["runtime.start.1"] == ("met", "")  # a fixed baseline entry is met
    assert v["runtime.create.1"][0] == "not covered"
    assert "this run selected none" in v["runtime.create.1"][1]
    assert set(v) == everything
    assert cert["verdict"].startswith("met with deviations (partial run: ")
    assert cert["summary"]["core_requirements"] == len(everything)
    assert cert["runtime"]["sha256"] == "ab" * 32 and cert["host"]["kernel"] == "6.1.0"
    files = cert["coverage"]["by_file"]
    assert files["runtime.md"]["covered"] >= 5 and files["runtime.md"]["deviation"] == 1
    state = next(s for s in cert["coverage"]["by_section"] if s["section"] == "State")
    assert state["file"] == "runtime.md" and state["met"] >= 2


def test_a_requirement_the_suite_has_no_test_for_is_not_a_partial_run() -> None:
    named = {"runtime.state.1", "runtime.state.2", "runtime.delete.3", "runtime.kill.1",
             "runtime.start.1"}  # fmt: skip
    cert = certify.build_certificate(results(), RUNTIME, HOST, "0.1.0", 0, (), named)
    assert cert["verdict"] == "met with deviations"
    assert "no test of the suite names it" in verdicts(cert)["runtime.create.1"][1]


def test_a_failure_or_an_unfinished_run_decides_the_verdict() -> None:
    r = results()
    r.tests["t::bad"] = TestResult("t::bad", "failed", ["runtime.state.1"], message="boom")
    cert = certify.build_certificate(r, RUNTIME, HOST, "0.1.0", 1, (), set())
    assert cert["verdict"] == "failed"
    assert verdicts(cert)["runtime.state.1"] == ("failed", "t::bad: boom")
    stopped = certify.build_certificate(results(), RUNTIME, HOST, "0.1.0", 2, (), set())
    assert stopped["verdict"] == "incomplete"


def test_the_markdown_certificate_shows_the_facts_and_what_was_not_met() -> None:
    cert = certify.build_certificate(results(), RUNTIME, HOST, "0.1.0", 0, (), set())
    text = certify.render_markdown(cert)
    assert text.startswith("# Bulkhead certificate: runc: met with deviations")
    for fact in ("runc version 1.1.5", "ab" * 32, "6.1.0", "bookworm", "hybrid; v1: pids",
                 "EPYC", "runtime-spec 1.3.0"):  # fmt: skip
        assert fact in text
    assert "| runtime.md § State |" in text
    assert "- `runtime.delete.3` (runtime.md § Delete): **deviation**: t::dev:" in text
    assert "- `runtime.kill.1` (runtime.md § Kill): **not runnable here**:" in text


def test_host_facts_are_read_from_os_release_and_cpuinfo(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert certify.distribution(release) == "Debian GNU/Linux 12 (bookworm)"
    assert certify.distribution(tmp_path / "missing") == "unknown"
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU 3000\n")
    assert certify.cpu(info).startswith("Some CPU 3000 (")
    blob = tmp_path / "bin"
    blob.write_bytes(b"abc")
    assert certify.sha256(blob) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_certify_runs_the_installed_suite_and_writes_the_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(command: list[str], cwd: Path, check: bool) -> subprocess.CompletedProcess[str]:
        seen["command"], seen["cwd"] = command, cwd
        jsonl = next(a.split("=", 1)[1] for a in command if a.startswith("--jsonl-report="))
        rows = [t.as_json() for t in results().ordered()]
        Path(jsonl).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(certify.subprocess, "run", fake_run)
    monkeypatch.setattr(certify, "runtime_facts", lambda name: {**RUNTIME, "name": name})
    monkeypatch.setattr(certify, "host_facts", lambda: HOST)
    out = tmp_path / "cert"
    code = cli.main(["certify", "--runtime", "runc", "--out", str(out), "--", "-k", "uts"])
    assert code == 0
    command = seen["command"]
    assert command[1:5] == ["-m", "pytest", "--pyargs", "conformance"]
    assert "--runtime=runc" in command and command[-2:] == ["-k", "uts"]
    assert f"--html-report={out / 'report.html'}" in command
    assert seen["cwd"] == out  # no project's pytest configuration applies
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["verdict"].startswith("met with deviations")
    assert (out / "certificate.md").read_text().startswith("# Bulkhead certificate: runc")


def test_certify_without_results_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        certify.subprocess, "run", lambda c, cwd, check: subprocess.CompletedProcess(c, 4)
    )
    monkeypatch.setattr(certify, "runtime_facts", lambda name: RUNTIME)
    assert cli.main(["certify", "--runtime", "runc", "--out", str(tmp_path)]) == 2
    assert "pytest wrote no results (exit 4)" in capsys.readouterr().err


def test_version_names_the_suite_the_spec_and_the_core_requirements_covered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("bulkhead 0.") and "runtime-spec 1.3.0" in line
    assert f"of {len(catalogue.core())} core requirements covered" in line


def test_the_console_script_is_installed() -> None:
    import sys

    script = Path(sys.executable).parent / "bulkhead"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert "core requirements covered" in done.stdout
