#!/usr/bin/env bash
# The gate's steps, shared by the GitHub action (ci/github/action.yml) and the GitLab component
# (ci/gitlab/templates/conformance.yml), and run by tests/test_ci_gate.py with the CI variables
# pointed at temporary files.
#
#   ci/gate.sh install    a venv at $BULKHEAD_VENV holding $BULKHEAD_PACKAGE (a pip requirement,
#                         e.g. "bulkhead==0.2.0" or a path to a checkout or wheel)
#   ci/gate.sh run        the suite against $BULKHEAD_RUNTIME, every report into
#                         $BULKHEAD_REPORT_DIR, the verdict and counts as outputs
#
# Inputs (environment): BULKHEAD_RUNTIME (required for run), BULKHEAD_PYTEST_ARGS (split on
# spaces), BULKHEAD_EXPECTATIONS (a file; empty: the suite's bundled ones), BULKHEAD_REPORT_DIR
# (default bulkhead-reports), BULKHEAD_VENV (default $RUNNER_TEMP or /tmp, /bulkhead-venv).
# Outputs: `verdict=met|failed`, `passed=N` ... appended to $GITHUB_OUTPUT when set, and to
# $BULKHEAD_REPORT_DIR/outputs.env always; the Markdown summary is appended to
# $GITHUB_STEP_SUMMARY when set. The exit code is pytest's: 0 all met, 1 a requirement failed,
# 2-5 pytest's own (usage, internal error, nothing collected).
set -euo pipefail

venv=${BULKHEAD_VENV:-${RUNNER_TEMP:-/tmp}/bulkhead-venv}
reports=${BULKHEAD_REPORT_DIR:-bulkhead-reports}

install() {
  local package=${BULKHEAD_PACKAGE:?BULKHEAD_PACKAGE names what to install}
  # An existing venv (a runner's cache) is reused.
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$package"
  "$venv/bin/bulkhead" --version
}

run() {
  local runtime=${BULKHEAD_RUNTIME:?BULKHEAD_RUNTIME names the runtime under test}
  mkdir -p "$reports"
  local args=(--pyargs conformance "--runtime=$runtime" -p no:cacheprovider -q
    "--junitxml=$reports/junit.xml" "--summary-report=$reports/summary.md"
    "--jsonl-report=$reports/results.jsonl" "--tap-report=$reports/results.tap"
    "--html-report=$reports/report.html" "--spec-report=$reports/spec-report.json")
  if [ -n "${BULKHEAD_EXPECTATIONS:-}" ]; then
    args+=("--expectations=$BULKHEAD_EXPECTATIONS")
  fi
  # Word splitting is the interface: extra arguments are given as one string.
  # shellcheck disable=SC2206
  local extra=(${BULKHEAD_PYTEST_ARGS:-})
  local code=0
  "$venv/bin/pytest" "${args[@]}" "${extra[@]}" || code=$?
  "$venv/bin/python" - "$reports" "$code" <<'EOF'
import collections
import json
import sys
from pathlib import Path

reports, code = Path(sys.argv[1]), int(sys.argv[2])
counts = collections.Counter()
results = reports / "results.jsonl"
if results.exists():
    for line in results.read_text().splitlines():
        counts[json.loads(line)["verdict"]] += 1
verdict = "met" if code == 0 else "failed" if code == 1 else "error"
outputs = [f"verdict={verdict}", f"exit-code={code}"] + [
    f"{name.replace(' ', '-')}={counts[name]}"
    for name in ("met", "failed", "deviation", "fixed", "not run")
]
(reports / "outputs.env").write_text("\n".join(outputs) + "\n")
print("\n".join(outputs))
EOF
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    cat "$reports/outputs.env" >>"$GITHUB_OUTPUT"
  fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$reports/summary.md" ]; then
    cat "$reports/summary.md" >>"$GITHUB_STEP_SUMMARY"
  fi
  return "$code"
}

case "${1:-}" in
  install) install ;;
  run) run ;;
  *) echo "usage: ci/gate.sh install|run" >&2; exit 2 ;;
esac
