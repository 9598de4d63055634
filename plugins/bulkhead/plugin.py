"""The pytest plugin's entry point: options, markers, and the hooks that do the rest.

Registered through the ``pytest11`` entry point, so ``pytest --pyargs conformance --runtime=crun``
works from any directory once the distribution is installed. That also means every pytest run in
such an environment loads it, for other projects too: this module imports nothing but the
standard library's lightest parts, declares the options, and registers ``bulkhead.hooks`` (which
imports pytest, already loaded, and nothing heavy until a Bulkhead test runs). Without
``--runtime`` and outside conformance/ the hooks do nothing visible, and no hypothesis setting
changes (see bulkhead.profiles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkhead.options import DEFAULT_PROFILE, HIDE_CHOICES, PROFILES

if TYPE_CHECKING:
    import pytest

MARKERS = (
    "spec(*ids): the runtime-spec v1.3.0 requirement ids this test checks "
    "(see the spec-requirements catalogue)",
    "requires(*names): host features the test needs; unmet ones skip with the reason "
    "(root, overlay, userns, cgroup_v1, cgroup_v2, cgroupns, timens, controller:<name>, "
    "cap:<number>)",
    "cve(id): the advisory whose regression this test guards against",
    "engine: a full-stack test of the engine (bulkhead-engine) over the runtime under test; "
    "most name no runtime-spec id",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bulkhead", "Bulkhead OCI runtime conformance")

    def add(flag: str, ini: str, help: str, **kw: Any) -> None:
        group.addoption(flag, dest=ini, help=help, **kw)
        ini_type = {"append": "linelist", "store_true": "bool"}.get(kw.get("action", ""), "string")
        parser.addini(ini, help=help, type=ini_type)  # type: ignore[arg-type]

    add(
        "--runtime",
        "bulkhead_runtime",
        "runtime under test: a name on PATH (runc, crun), a path (kept as given: symlinks are "
        "not resolved), or 'reference' (Bulkhead's bulkhead-runtime beside this Python) "
        "(default: $OCI_RUNTIME, $RUNTIME, else runc)",
    )
    add(
        "--runtime-arg",
        "bulkhead_runtime_args",
        "extra global argument for every runtime call (repeatable), e.g. --runtime-arg=--debug",
        action="append",
    )
    add(
        "--runtime-root",
        "bulkhead_runtime_root",
        "parent of the runtime's --root directories (default: a fresh directory per session "
        "and xdist worker)",
    )
    add(
        "--keep-failed",
        "bulkhead_keep_failed",
        "keep the bundles (config.json, overlay upper, stdio) of failed tests; the failure "
        "report names them",
        action="store_true",
    )
    add(
        "--runtime-timeout",
        "bulkhead_runtime_timeout",
        "seconds any single runtime call may take (default 30)",
    )
    add(
        "--hide-cgroup2-controllers",
        "bulkhead_hide_cgroup2_controllers",
        "run each runtime call where the cgroup2 mount lists no controllers: auto (crun on a "
        "hybrid host with cgroup2 controllers), yes, no",
        choices=HIDE_CHOICES,
    )
    add(
        "--spec-report",
        "bulkhead_spec_report",
        "write a JSON file with a verdict per runtime-spec requirement id and its tests",
    )
    add(
        "--expectations",
        "bulkhead_expectations",
        "TOML file of known deviations (strict xfails) for the runtime under test "
        "(default: the suite's file for the runtime's name, if any)",
    )
    # The gate's reports and selection (docs/gate.md). Named --*-report, not --tap, --html or
    # --json-report: pytest-tap, pytest-html and pytest-json-report own those, and two plugins
    # declaring one option break every pytest run of an environment that has both.
    add(
        "--no-expectations",
        "bulkhead_no_expectations",
        "apply no expectations at all (strict: every deviation is a failure)",
        action="store_true",
    )
    # Not --profile: pytest-profiling declares that one (see the note above).
    add(
        "--spec-profile",
        "bulkhead_spec_profile",
        "what the suite accepts where runtimes dispute the spec (docs/profiles.md): strict, "
        "the spec's words, or runc-compatible, also what runc does, asserted exactly "
        f"(default {DEFAULT_PROFILE})",
        choices=PROFILES,
    )
    add(
        "--write-expectations",
        "bulkhead_write_expectations",
        "write today's failures and deviations as an expectations file (a baseline, entries "
        "bound to the runtime's version, non-strict: a fixed test is reported, not failed)",
    )
    add(
        "--spec-id",
        "bulkhead_spec_ids",
        "run only tests naming this requirement id or an id under it (repeatable; a prefix "
        "ending at a dot: config-linux.seccomp)",
        action="append",
    )
    add(
        "--spec-section",
        "bulkhead_spec_sections",
        "run only tests naming a requirement of this spec file, section title or anchor "
        "(repeatable: config-linux.md, Lifecycle, runtime.md#lifecycle)",
        action="append",
    )
    add("--tap-report", "bulkhead_tap_report", "write a TAP version 13 report to FILE")
    add(
        "--jsonl-report",
        "bulkhead_jsonl_report",
        "write a JSON lines report to FILE: one object per test with its runtime calls",
    )
    add(
        "--summary-report",
        "bulkhead_summary_report",
        "write a Markdown summary to FILE (verdict, counts, failures with the spec sentence)",
    )
    add(
        "--html-report",
        "bulkhead_html_report",
        "write a self-contained HTML report to FILE",
    )


def pytest_cmdline_main(config: pytest.Config) -> None:
    # Before hypothesis's own plugin loads the profile named by --hypothesis-profile: one of
    # ours (bulkhead-thorough) has to be registered then, and only when it is asked for.
    requested = config.getoption("hypothesis_profile", None)
    if requested:
        from bulkhead import profiles

        profiles.register_requested(str(requested))


def pytest_configure(config: pytest.Config) -> None:
    from bulkhead.hooks import install

    session = install(config)
    # Our marker names are common words (spec, requires): registered for another project's
    # run, they would hide its own unknown-marker warnings. So only for a run that asks for
    # Bulkhead, or to list them.
    if session.visible() or config.option.markers:
        for marker in MARKERS:
            config.addinivalue_line("markers", marker)
