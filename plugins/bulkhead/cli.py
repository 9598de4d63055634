"""The ``bulkhead`` command: ``bulkhead --version`` and ``bulkhead certify``.

Exit codes: 0 all met, 1 a requirement failed (or the certificate's verdict is ``failed``),
2 usage errors, pytest's own code when the suite run did not finish.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bulkhead.options import DEFAULT_PROFILE, PROFILES


def version_line() -> str:
    from bulkhead import catalogue, coverage
    from bulkhead.gate import suite_version

    core = catalogue.core()
    covered = coverage.covered(core, coverage.named_ids())
    return (
        f"bulkhead {suite_version()}: runtime-spec {catalogue.SPEC_VERSION}, "
        f"{len(covered)} of {len(core)} core requirements covered by the suite's tests"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkhead", description="Bulkhead: a conformance suite for OCI runtimes."
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the suite version, the runtime-spec version and the requirements covered",
    )
    sub = parser.add_subparsers(dest="command")
    cert = sub.add_parser(
        "certify",
        help="run every test this host allows and write certificate.json, certificate.md "
        "and the HTML report",
        description="Runs `pytest --pyargs conformance` against RUNTIME and writes the "
        "certificates to DIR. Arguments after `--` go to pytest (e.g. -- -n 2 -k uts).",
    )
    cert.add_argument("--runtime", required=True, help="runc, crun, a path, or 'reference'")
    cert.add_argument("--out", required=True, type=Path, help="directory for the certificates")
    cert.add_argument(
        "--spec-profile",
        default=DEFAULT_PROFILE,
        choices=PROFILES,
        help="what is accepted where runtimes dispute the spec (docs/profiles.md); recorded in "
        f"the certificate (default {DEFAULT_PROFILE})",
    )
    cert.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_line())
        return 0
    if args.command == "certify":
        from bulkhead.certify import certify
        from bulkhead.errors import BulkheadError

        try:
            cert, code = certify(args.runtime, args.out, args.pytest_args, args.spec_profile)
        except (BulkheadError, RuntimeError) as exc:
            print(f"bulkhead certify: {exc}", file=sys.stderr)
            return 2
        s = cert["summary"]
        print(
            f"bulkhead certify: {cert['runtime']['name']}: {cert['verdict']} "
            f"[profile {cert['profile']}] "
            f"({s.get('met', 0)} met, {s.get('deviation', 0)} deviation, "
            f"{s.get('failed', 0)} failed, {s.get('not runnable here', 0)} not runnable here, "
            f"{s.get('not covered', 0)} not covered, of {s['core_requirements']} core "
            f"requirements); written to {args.out}"
        )
        if cert["verdict"].startswith("incomplete"):
            return code
        return 1 if cert["verdict"].startswith("failed") else 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
