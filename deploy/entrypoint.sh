#!/bin/sh
# Bulkhead's node check: runs the conformance suite against the OCI runtime of the node this
# container runs on (the image's ENTRYPOINT; docs/cluster.md). POSIX sh: Debian's dash runs it.
#
# Environment:
#   BULKHEAD_RUNTIME      the runtime under test: a path as seen in this container
#                         (/host/usr/bin/runc), a name looked up in the host's bin directories
#                         under BULKHEAD_HOST_ROOT (runc, crun), or `reference` (the runtime this
#                         image ships). Default: runc, else crun, under the host root.
#   BULKHEAD_HOST_ROOT    where the host's / is mounted (default /host)
#   BULKHEAD_PYTEST_ARGS  extra pytest arguments, split at white space, no quoting
#                         (e.g. "-n 2", "-k uts", "--spec-section runtime.md")
#   BULKHEAD_CERTIFY      1: run `bulkhead certify` instead, which also writes certificate.json,
#                         certificate.md and the HTML report
#   BULKHEAD_SPEC_PROFILE strict (the default) or runc-compatible: what is accepted where
#                         runtimes dispute the spec (--spec-profile; recorded by certify)
#   BULKHEAD_REPORT_DIR   where the reports go when not under Sonobuoy (default /reports)
#   BULKHEAD_VENV         the venv holding Bulkhead (default /opt/bulkhead/venv)
#   BULKHEAD_HOLD         1: after the run, wait until terminated instead of exiting (a DaemonSet's
#                         pods are always restarted: without it the check would run again and again)
#   SONOBUOY_RESULTS_DIR  set by Sonobuoy: the results go there, then the file `done` in it names
#                         the result file (Sonobuoy's plugin contract: its worker waits for `done`
#                         and sends the file it names to the aggregator)
#
# Exit code: the suite's (pytest's: 0 met, 1 a requirement failed, 2 interrupted, 3 internal
# error, 4 usage error, 5 nothing collected), or certify's; 4 when no runtime or venv is found.
# SIGTERM or SIGINT is passed on to the suite as SIGINT, as a terminal's Ctrl-C would be, so its
# fixtures remove what they made (containers, mounts, cgroups) before the reports are written.
set -eu

host_root=${BULKHEAD_HOST_ROOT:-/host}
venv=${BULKHEAD_VENV:-/opt/bulkhead/venv}
python=$venv/bin/python

say() { printf 'bulkhead-node-check: %s\n' "$*" >&2; }

# Prints the path, in this container, of the host's absolute path $1: each component is looked
# up under the host root, and a symlink is followed there too (an absolute target such as
# /usr/bin/runc -> /etc/alternatives/runc names the host's file, not this image's).
host_resolve() {
  rest=$1 out=$host_root hops=0
  while [ -n "$rest" ]; do
    case $rest in
      /*) rest=${rest#/}; continue ;;
    esac
    comp=${rest%%/*}
    case $rest in
      */*) rest=/${rest#*/} ;;
      *) rest= ;;
    esac
    case $comp in
      . | '') continue ;;
      ..) [ "$out" = "$host_root" ] || out=${out%/*}; continue ;;
    esac
    if [ -L "$out/$comp" ]; then
      hops=$((hops + 1))
      [ "$hops" -le 40 ] || return 1 # ELOOP's limit, as the kernel counts
      target=$(readlink "$out/$comp")
      case $target in
        /*) out=$host_root ;;
      esac
      rest=$target$rest
    else
      out=$out/$comp
    fi
  done
  printf '%s\n' "$out"
}

# A path the suite can run: kept as given when it works from here (the suite keeps argv[0] as
# given: multi-call runtimes such as crun/krun decide what they are from it), else resolved
# under the host root and, if that changes its name, reached through a link of the old name.
runnable() {
  given=$1
  if [ -f "$given" ] && [ -x "$given" ]; then
    printf '%s\n' "$given"
    return 0
  fi
  case $given in
    "$host_root"/*) ;;
    *) return 1 ;;
  esac
  resolved=$(host_resolve "${given#"$host_root"}") || return 1
  [ -f "$resolved" ] && [ -x "$resolved" ] || return 1
  say "$given is $resolved on the host"
  if [ "${resolved##*/}" = "${given##*/}" ]; then
    printf '%s\n' "$resolved"
  else
    # Kept after the run (in TMPDIR, the pod's work volume): the reports name this path.
    links=$tmp/bulkhead-runtime
    mkdir -p "$links"
    ln -sfn "$resolved" "$links/${given##*/}"
    printf '%s\n' "$links/${given##*/}"
  fi
}

find_runtime() {
  wanted=${BULKHEAD_RUNTIME:-}
  case $wanted in
    reference) printf '%s\n' reference; return 0 ;;
    /*) runnable "$wanted"; return ;;
  esac
  for name in ${wanted:-runc crun}; do
    for dir in usr/local/sbin usr/local/bin usr/sbin usr/bin sbin bin; do
      if found=$(runnable "$host_root/$dir/$name"); then
        printf '%s\n' "$found"
        return 0
      fi
    done
  done
  return 1
}

xml_escape() {
  # XML 1.0 allows no C0 control character but tab, newline and carriage return.
  tr -d '\000-\010\013\014\016-\037' | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' \
    -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# A JUnit file saying why no suite report exists (pytest stopped before writing one, or the
# runtime was not found), so a Sonobuoy run shows the reason instead of waiting for its timeout.
write_error_junit() {
  file=$1 message=$2 log=$3
  message=$(printf '%s' "$message" | xml_escape)
  {
    printf '<?xml version="1.0" encoding="utf-8"?>\n'
    printf '<testsuites><testsuite name="bulkhead" tests="1" errors="1" failures="0" skipped="0">\n'
    printf '<testcase classname="bulkhead.node-check" name="the conformance suite ran">\n'
    printf '<error message="%s">' "$message"
    if [ -s "$log" ]; then tail -n 60 "$log" | xml_escape; else printf '%s' "$message"; fi
    printf '</error>\n</testcase>\n</testsuite></testsuites>\n'
  } >"$file"
}

# Runs "$@" in a session of its own, its output both shown and kept in $log; SIGTERM or SIGINT
# to this script becomes SIGINT to that session's process group (the suite, its xdist workers,
# certify's pytest). Sets $status.
child=
# shellcheck disable=SC2317 # called by the trap
forward() { [ -z "$child" ] || kill -s INT -- "-$child" 2>/dev/null || true; }
run_logged() {
  log=$1
  shift
  rm -f "$work/output"
  mkfifo "$work/output"
  tee "$log" <"$work/output" &
  tee_pid=$!
  trap forward TERM INT
  # util-linux setsid: this background child is no process group leader, so setsid(2) needs no
  # fork and $! is the suite's own pid and process group.
  setsid "$@" >"$work/output" 2>&1 &
  child=$!
  while :; do
    status=0
    wait "$child" || status=$?
    # A trap ends `wait` early (status > 128) while the child still runs: wait again.
    kill -0 "$child" 2>/dev/null || break
  done
  child=
  trap - TERM INT
  wait "$tee_pid" || true
  rm -f "$work/output"
}

# Asynchronous commands of a non-interactive shell start with SIGINT ignored, and Python keeps
# an ignored SIGINT ignored: each Python entry point below installs its handler itself. certify
# only waits for its pytest (which takes the SIGINT) and then writes an `incomplete` certificate.
PYTEST_MAIN='import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import pytest
sys.exit(pytest.console_main())'
CERTIFY_MAIN='import signal, sys
signal.signal(signal.SIGINT, lambda signum, frame: None)
from bulkhead.cli import main
sys.exit(main())'

tmp=${TMPDIR:-/tmp}
mkdir -p "$tmp"
work=$(mktemp -d "$tmp/bulkhead-node-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${SONOBUOY_RESULTS_DIR:-}" ]; then
  out=$SONOBUOY_RESULTS_DIR
else
  out=${BULKHEAD_REPORT_DIR:-/reports}
fi
mkdir -p "$out"
# A previous run's markers would announce this one as finished.
rm -f "$out/exit-code" "$out/done"
log=$out/node-check.log

status=0
result=
if [ ! -x "$python" ]; then
  status=4
  reason="no Bulkhead venv at $venv (set BULKHEAD_VENV)"
elif ! runtime=$(find_runtime); then
  status=4
  reason="runtime ${BULKHEAD_RUNTIME:-runc or crun} not found under $host_root (set BULKHEAD_RUNTIME to its path, e.g. $host_root/usr/bin/runc)"
fi

set -f # BULKHEAD_PYTEST_ARGS is split at white space, never globbed
profile=${BULKHEAD_SPEC_PROFILE:+--spec-profile=$BULKHEAD_SPEC_PROFILE}
if [ "$status" -ne 0 ]; then
  say "$reason"
  printf '%s\n' "$reason" >"$log"
  result=$out/junit.xml
  write_error_junit "$result" "$reason" "$log"
elif [ "${BULKHEAD_CERTIFY:-0}" = 1 ]; then
  say "certifying $runtime"
  cert=$out/bulkhead-certificate
  rm -rf "$cert"
  mkdir -p "$cert"
  # From the empty work directory: no project's pytest configuration applies.
  cd "$work"
  # shellcheck disable=SC2086 # the extra arguments are meant to be split
  run_logged "$log" "$python" -c "$CERTIFY_MAIN" certify --runtime="$runtime" --out="$cert" \
    $profile -- -p no:cacheprovider ${BULKHEAD_PYTEST_ARGS:-}
  cd /
  [ -s "$cert/junit.xml" ] ||
    write_error_junit "$cert/junit.xml" "bulkhead certify exited $status without a JUnit report" "$log"
  if [ -n "${SONOBUOY_RESULTS_DIR:-}" ]; then
    # Sonobuoy sends one file: the certificate's directory as a tarball (its junit processing
    # reads the XML files inside).
    result=$out/bulkhead-certificate.tar.gz
    tar -C "$out" -czf "$result" bulkhead-certificate node-check.log
  fi
else
  say "running the conformance suite against $runtime"
  reports=
  [ -n "${SONOBUOY_RESULTS_DIR:-}" ] ||
    reports="--summary-report=$out/summary.md --html-report=$out/report.html --jsonl-report=$out/results.jsonl"
  rm -f "$out/junit.xml"
  cd "$work"
  # shellcheck disable=SC2086 # the extra arguments are meant to be split
  run_logged "$log" "$python" -c "$PYTEST_MAIN" --pyargs conformance --runtime="$runtime" \
    -p no:cacheprovider --junitxml="$out/junit.xml" $reports $profile ${BULKHEAD_PYTEST_ARGS:-}
  cd /
  result=$out/junit.xml
  [ -s "$result" ] ||
    write_error_junit "$result" "pytest exited $status without a JUnit report" "$log"
fi
set +f

if [ -n "${SONOBUOY_RESULTS_DIR:-}" ]; then
  # Written last and atomically: Sonobuoy's worker reads it as soon as it exists.
  printf '%s' "$result" >"$out/done.tmp"
  mv "$out/done.tmp" "$out/done"
fi
printf '%s\n' "$status" >"$out/exit-code"
say "finished with exit code $status; results in $out"

if [ "${BULKHEAD_HOLD:-0}" = 1 ]; then
  rm -rf "$work"
  say "holding until terminated (BULKHEAD_HOLD=1)"
  sleeper=
  trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit "$status"' TERM INT
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper" || true
  done
fi
exit "$status"
