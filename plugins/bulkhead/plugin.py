"""The pytest plugin: options, markers, fixtures and reports. Thin: the work is in the library.

Registered through the ``pytest11`` entry point, so ``pytest --pyargs conformance --runtime=crun``
works from any directory once the distribution is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead import expectations, profiles, requirements
from bulkhead.containers import ContainerFactory
from bulkhead.errors import BulkheadError
from bulkhead.host import HostFacts, probe_host
from bulkhead.report import SpecLedger
from bulkhead.runtime import RuntimeClient
from bulkhead.suite import (
    HIDE_CHOICES,
    Suite,
    SuiteOptions,
    needs_hidden_controllers,
    resolve_binary,
)

profiles.register()

MARKERS = (
    "spec(*ids): the runtime-spec v1.3.0 requirement ids this test checks "
    "(see the spec-requirements catalogue)",
    "requires(*names): host features the test needs; unmet ones skip with the reason "
    "(root, overlay, userns, cgroup_v1, cgroup_v2, cgroupns, timens, controller:<name>, "
    "cap:<number>)",
    "cve(id): the advisory whose regression this test guards against",
)

_suite_key = pytest.StashKey[Suite]()
_mark_key = pytest.StashKey[int]()
_expect_key = pytest.StashKey[list[expectations.Expectation]]()
_used_key = pytest.StashKey[set[str]]()
_files_key = pytest.StashKey[set[str]]()
_summary_key = pytest.StashKey[dict[str, str]]()
_ledger_key = pytest.StashKey[SpecLedger]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bulkhead", "Bulkhead OCI runtime conformance")

    def add(flag: str, ini: str, help: str, **kw: Any) -> None:
        group.addoption(flag, dest=ini, help=help, **kw)
        ini_type = {"append": "linelist", "store_true": "bool"}.get(kw.get("action", ""), "string")
        parser.addini(ini, help=help, type=ini_type)  # type: ignore[arg-type]

    add(
        "--runtime",
        "bulkhead_runtime",
        "runtime under test: a name on PATH (runc, crun), a path, or 'reference' "
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
        "keep the bundles (config.json, overlay upper, stdio) of containers in failed tests",
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


def _opt(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    if value in (None, [], False):
        value = config.getini(name)
    return value


def _runtime_name(config: pytest.Config) -> str:
    return str(
        _opt(config, "bulkhead_runtime")
        or os.environ.get("OCI_RUNTIME")
        or os.environ.get("RUNTIME")
        or "runc"
    )


def _timeout(config: pytest.Config) -> float:
    raw = _opt(config, "bulkhead_runtime_timeout")
    if raw in (None, ""):
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise pytest.UsageError(f"--runtime-timeout {raw}: give a number of seconds above 0")
    return value


def _options(config: pytest.Config) -> SuiteOptions:
    root = _opt(config, "bulkhead_runtime_root")
    timeout = _timeout(config)
    return SuiteOptions(
        runtime=_runtime_name(config),
        runtime_args=tuple(_opt(config, "bulkhead_runtime_args") or ()),
        runtime_root=Path(root) if root else None,
        keep_failed=bool(_opt(config, "bulkhead_keep_failed")),
        hide_cgroup2_controllers=str(_opt(config, "bulkhead_hide_cgroup2_controllers") or "auto"),
        timeout=timeout,
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.getoption("hypothesis_profile", None) is None:
        from hypothesis import settings

        settings.load_profile(profiles.default_profile())
    name = Path(_runtime_name(config)).name
    try:
        file = _opt(config, "bulkhead_expectations")
        loaded, _ = expectations.load(Path(file) if file else None, name)
    except BulkheadError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_expect_key] = loaded
    config.stash[_used_key] = set()
    config.stash[_ledger_key] = SpecLedger()
    config.pluginmanager.register(_LedgerPlugin(config.stash[_ledger_key]), "bulkhead-ledger")
    _timeout(config)  # a bad value is a usage error now, not an error in every test later


def _runtime_summary(config: pytest.Config) -> dict[str, str]:
    """Name, path and version of the runtime, asked once per session (header and JUnit)."""
    if _summary_key not in config.stash:
        config.stash[_summary_key] = _describe_runtime(config)
    return config.stash[_summary_key]


def _describe_runtime(config: pytest.Config) -> dict[str, str]:
    name = _runtime_name(config)
    try:
        binary = resolve_binary(name)
    except BulkheadError as exc:
        return {"runtime": name, "runtime_error": str(exc)}
    client = RuntimeClient(binary, root=Path("/nonexistent"))
    return {
        "runtime": binary.name,
        "runtime_path": str(binary),
        "runtime_version": client.version(),
    }


def pytest_report_header(config: pytest.Config) -> list[str]:
    info = _runtime_summary(config)
    host = probe_host()
    lines = [
        f"bulkhead: runtime {info.get('runtime_path', info['runtime'])} "
        f"({info.get('runtime_version') or info.get('runtime_error')})"
    ]
    lines += [f"bulkhead: {line}" for line in host.describe()]
    if "runtime_path" in info:
        choice = str(_opt(config, "bulkhead_hide_cgroup2_controllers") or "auto")
        if needs_hidden_controllers(choice, Path(info["runtime_path"]), host):
            lines.append(
                "bulkhead: runtime calls run in a private mount namespace where cgroup2 lists "
                f"no controllers (--hide-cgroup2-controllers {choice})"
            )
    return lines


def pytest_sessionstart(session: pytest.Session) -> None:
    # The controller writes the JUnit XML (workers cannot add suite properties under xdist), so
    # the runtime's name and version are recorded here, once.
    if hasattr(session.config, "workerinput"):
        return
    from _pytest.junitxml import xml_key

    xml = session.config.stash.get(xml_key, None)
    if xml is not None:
        for key, value in _runtime_summary(session.config).items():
            xml.add_global_property(f"bulkhead_{key}", value)
        xml.add_global_property("bulkhead_cgroups", probe_host().cgroups.describe())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    host = probe_host()
    conformance = any("bulkhead_suite" in getattr(i, "fixturenames", ()) for i in items)
    # Files whose expectations can be judged: an entry for a module that was not collected at
    # all (a -k or single-file run) is not stale, just not in this run.
    config.stash[_files_key] = {i.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for i in items}
    if conformance:
        # Fail fast, once, on a runtime that cannot be found, not once per test.
        try:
            resolve_binary(_runtime_name(config))
        except BulkheadError as exc:
            raise pytest.UsageError(str(exc)) from exc
    expected = config.stash[_expect_key]
    runtime = Path(_runtime_name(config)).name
    for item in items:
        ids = [str(i) for mark in item.iter_markers("spec") for i in mark.args]
        if ids:
            item.user_properties.append(("spec", " ".join(ids)))
        for mark in item.iter_markers("requires"):
            try:
                reasons = requirements.unmet(mark.args, host)
            except BulkheadError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from exc
            if reasons:
                item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))
        for exp in expected:
            if exp.matches(item.nodeid):
                config.stash[_used_key].add(exp.test)
                item.add_marker(pytest.mark.xfail(strict=True, reason=exp.describe(runtime)))


class _LedgerPlugin:
    """Feeds each test report's spec ids into the session's ledger (registered per config,
    since ``pytest_runtest_logreport`` is not given the config)."""

    def __init__(self, ledger: SpecLedger) -> None:
        self.ledger = ledger

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ids = dict(report.user_properties).get("spec")
        if not ids:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            xfailed = hasattr(report, "wasxfail") and report.skipped
            outcome = "xfailed" if xfailed else report.outcome
        elif report.failed:  # a teardown error, e.g. the leak sentinel
            outcome = "failed"
        else:
            return
        self.ledger.record(report.nodeid, str(ids).split(), outcome)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    ledger = config.stash.get(_ledger_key, None)
    if ledger is not None and ledger.verdicts:
        terminalreporter.write_line("bulkhead: " + ledger.summary())
        target = _opt(config, "bulkhead_spec_report")
        if target:
            ledger.write(Path(target))
            terminalreporter.write_line(f"bulkhead: spec report written to {target}")
    files = config.stash.get(_files_key, set())
    unused = [
        e.test
        for e in config.stash[_expect_key]
        if e.test not in config.stash[_used_key] and e.test.split("::", 1)[0] in files
    ]
    if unused:
        terminalreporter.write_line(
            "bulkhead: expectations that matched no collected test: " + ", ".join(unused),
            yellow=True,
        )


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bulkhead_suite(request: pytest.FixtureRequest) -> Iterator[Suite]:
    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    try:
        suite = Suite(_options(config), worker=worker)
    except BulkheadError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[_suite_key] = suite
    yield suite
    suite.close()


@pytest.fixture(scope="session")
def runtime(bulkhead_suite: Suite) -> RuntimeClient:
    """The client of the runtime under test."""
    return bulkhead_suite.client


@pytest.fixture(scope="session")
def containers(bulkhead_suite: Suite) -> ContainerFactory:
    """Session-wide container factory: every container it makes is removed on leaving its
    ``with`` block, so it is safe under ``@given``."""
    return bulkhead_suite.factory


@pytest.fixture(scope="session")
def host() -> HostFacts:
    return probe_host()


@pytest.fixture(autouse=True)
def _bulkhead_leak_sentinel(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that leaves mounts, cgroups, processes, devices or state behind."""
    if "bulkhead_suite" not in request.fixturenames:
        yield
        return
    suite: Suite = request.getfixturevalue("bulkhead_suite")
    request.node.stash[_mark_key] = suite.log.mark()
    before = suite.sentinel.snapshot()
    yield
    leaks = suite.sentinel.leaks(before)
    if leaks:
        problems = suite.sentinel.clean(leaks, suite.delete_state)
        text = "\n".join("  " + leak.describe() for leak in leaks)
        if problems:
            text += "\nand could not remove:\n" + "\n".join("  " + p for p in problems)
        pytest.fail(f"the test left behind:\n{text}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    suite = item.config.stash.get(_suite_key, None)
    if report.failed and suite is not None and _mark_key in item.stash:
        calls = suite.log.since(item.stash[_mark_key])
        if calls:
            report.sections.append(
                (f"runtime calls ({suite.client.name})", "\n".join(c.describe() for c in calls))
            )
        if suite.factory.kept:
            report.sections.append(
                ("kept bundles", "\n".join(str(p) for p in suite.factory.kept[-5:]))
            )
    return report
