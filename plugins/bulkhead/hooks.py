"""What the plugin does in a pytest session: fixtures, markers, reports. Registered by
``bulkhead.plugin`` at configure time, in every pytest run of an environment where Bulkhead is
installed, so it keeps out of the way:

- it imports nothing heavy (pydantic, hypothesis, jsonschema, pyroute2, ctypes) until one of
  Bulkhead's tests needs it; the machinery is imported inside the hooks that use it;
- the report header, the JUnit properties and the summary lines appear only when the run asks
  for Bulkhead (``--runtime`` or its ini key) or reaches the conformance suite;
- markers, expectations and hypothesis settings apply to Bulkhead's items only: those that use
  the suite's fixtures (or, when ``--runtime`` is given, any item carrying our markers);
- whatever stops every test (not root, no overlayfs, no compiler, a runtime that cannot run)
  is one usage error at start, raised when conformance tests are collected (under xdist: on the
  controller, before the workers start, when the command line reaches the suite).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hypothesis import settings

    from bulkhead.containers import ContainerFactory
    from bulkhead.disputes import Ask
    from bulkhead.expectations import Expectation, Version
    from bulkhead.host import HostFacts
    from bulkhead.report import SpecLedger
    from bulkhead.results import Results
    from bulkhead.runtime import RuntimeClient
    from bulkhead.suite import Suite, SuiteOptions

SUITE_FIXTURE = "bulkhead_suite"
_session_key = pytest.StashKey["BulkheadSession"]()
_item_key = pytest.StashKey["_ItemState"]()
_error_key = pytest.StashKey[str]()
_WORKER_OUTPUT = "bulkhead_expectations"


def install(config: pytest.Config) -> BulkheadSession:
    session = BulkheadSession(config)
    config.stash[_session_key] = session
    config.pluginmanager.register(session, "bulkhead-session")
    config.pluginmanager.register(sys.modules[__name__], "bulkhead-fixtures")
    session.validate()
    return session


def _opt(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    if value in (None, [], False):
        value = config.getini(name)
    return value


def runtime_name(config: pytest.Config) -> str:
    return str(
        _opt(config, "bulkhead_runtime")
        or os.environ.get("OCI_RUNTIME")
        or os.environ.get("RUNTIME")
        or "runc"
    )


def _timeout(config: pytest.Config) -> float:
    raw = _opt(config, "bulkhead_runtime_timeout")
    if raw in (None, ""):
        from bulkhead.options import DEFAULT_TIMEOUT

        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise pytest.UsageError(f"--runtime-timeout {raw}: give a number of seconds above 0")
    return value


def uses_suite(item: pytest.Item) -> bool:
    """One of Bulkhead's tests: it reaches the suite's machinery through our fixtures."""
    return SUITE_FIXTURE in getattr(item, "fixturenames", ())


def _conformance_dir() -> Path | None:
    """Where the installed conformance package lives, if it carries its expectations."""
    from bulkhead.coverage import suite_dir

    path = suite_dir()
    return path if path is not None and (path / "expectations").is_dir() else None


def targets_conformance(config: pytest.Config) -> bool:
    """Whether the command line (or testpaths) reaches the conformance suite: an argument inside
    it, or the checkout that holds it (``pytest`` in Bulkhead's own tree)."""
    suite = _conformance_dir()
    if suite is None:
        return False
    suite = suite.resolve()
    for arg in config.args:
        target = str(arg).split("::", 1)[0]
        path: Path | None
        if config.option.pyargs and "/" not in target:
            if target.split(".", 1)[0] != "conformance":
                continue
            path = suite
        else:
            path = (config.invocation_params.dir / target).resolve()
        if path == suite or suite in path.parents or path == suite.parent:
            return True
    return False


@dataclass
class _ItemState:
    suite: Suite
    mark: int
    reported: bool = False


class BulkheadSession:
    """Per-config state and the hooks that need it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.explicit = bool(_opt(config, "bulkhead_runtime"))
        self._visible: bool | None = None
        self._summary: dict[str, str] | None = None
        self._expectations: tuple[list[Expectation], str] | None = None
        self._ledger: SpecLedger | None = None
        self._chosen: settings | None = None
        self.preflight_done = bool(getattr(config, "workerinput", {}).get("bulkhead_preflight"))
        self.files: set[str] = set()
        self.used: set[str] = set()
        self.inapplicable: set[str] = set()
        self.junit_done = False
        self.suite: Suite | None = None
        # The gate (bulkhead.gate): the requirement selection, per-test results for the reports,
        # when the session started, and how many xdist workers reported back.
        self.selected: frozenset[str] | None = None
        self._results: Results | None = None
        self._collects: bool | None = None
        self.started = 0.0
        self.workers = 0
        # Under xdist a usage error raised in a worker is an internal error of the controller,
        # with the message buried: a worker fails the affected tests with it instead.
        self.in_worker = hasattr(config, "workerinput")
        self.worker_error: str | None = None

    # --- facts, asked for lazily ------------------------------------------------------------
    def validate(self) -> None:
        """Values given for our own options are checked now: a usage error, once."""
        _timeout(self.config)
        self.profile()
        if _opt(self.config, "bulkhead_no_expectations") and _opt(
            self.config, "bulkhead_expectations"
        ):
            raise pytest.UsageError("--no-expectations and --expectations exclude each other")
        if _opt(self.config, "bulkhead_expectations"):
            self.expectations()
        ids = _opt(self.config, "bulkhead_spec_ids") or ()
        sections = _opt(self.config, "bulkhead_spec_sections") or ()
        if ids or sections:
            from bulkhead import gate
            from bulkhead.errors import BulkheadError

            try:
                self.selected = gate.selection(ids, sections)
            except BulkheadError as exc:
                raise pytest.UsageError(str(exc)) from exc

    def visible(self) -> bool:
        """Whether the run asks for Bulkhead before anything is collected (header, JUnit)."""
        if self._visible is None:
            self._visible = self.explicit or targets_conformance(self.config)
        return self._visible

    def profile(self) -> str:
        """The --spec-profile (bulkhead.disputes): what is accepted where runtimes dispute."""
        from bulkhead.options import DEFAULT_PROFILE, PROFILES

        value = str(_opt(self.config, "bulkhead_spec_profile") or DEFAULT_PROFILE)
        if value not in PROFILES:
            raise pytest.UsageError(f"--spec-profile {value}: give one of {', '.join(PROFILES)}")
        return value

    def options(self) -> SuiteOptions:
        from bulkhead.suite import SuiteOptions

        root = _opt(self.config, "bulkhead_runtime_root")
        return SuiteOptions(
            runtime=runtime_name(self.config),
            runtime_args=tuple(_opt(self.config, "bulkhead_runtime_args") or ()),
            runtime_root=Path(root) if root else None,
            keep_failed=bool(_opt(self.config, "bulkhead_keep_failed")),
            hide_cgroup2_controllers=str(
                _opt(self.config, "bulkhead_hide_cgroup2_controllers") or "auto"
            ),
            timeout=_timeout(self.config),
        )

    def summary(self) -> dict[str, str]:
        """Name, path and version of the runtime, asked once per process."""
        if self._summary is None:
            from bulkhead.errors import BulkheadError
            from bulkhead.runtime import RuntimeClient
            from bulkhead.suite import resolve_binary

            name = runtime_name(self.config)
            try:
                binary = resolve_binary(name)
            except BulkheadError as exc:
                self._summary = {"runtime": name, "runtime_error": str(exc)}
            else:
                client = RuntimeClient(binary, root=Path("/nonexistent"))
                self._summary = {
                    "runtime": binary.name,
                    "runtime_path": str(binary),
                    "runtime_version": client.version(),
                }
        return self._summary

    def version(self) -> Version | None:
        from bulkhead.expectations import parse_version

        return parse_version(self.summary().get("runtime_version", ""))

    def expectations(self) -> tuple[list[Expectation], str]:
        if self._expectations is None:
            from bulkhead import expectations
            from bulkhead.errors import BulkheadError

            if _opt(self.config, "bulkhead_no_expectations"):
                self._expectations = ([], "--no-expectations")
                return self._expectations
            file = _opt(self.config, "bulkhead_expectations")
            try:
                self._expectations = expectations.load(
                    Path(file) if file else None, Path(runtime_name(self.config)).name
                )
            except BulkheadError as exc:
                raise pytest.UsageError(str(exc)) from exc
        return self._expectations

    def ledger(self) -> SpecLedger:
        if self._ledger is None:
            from bulkhead.report import SpecLedger

            self._ledger = SpecLedger()
        return self._ledger

    def gate_targets(self) -> dict[str, str]:
        """The gate's report files asked for, by option."""
        from bulkhead.options import REPORT_OPTIONS

        return {k: str(v) for k in REPORT_OPTIONS if (v := _opt(self.config, k))}

    def collects_results(self) -> bool:
        """Whether per-test results are kept (asked on every report: decided once)."""
        if self._collects is None:
            self._collects = bool(
                self.gate_targets() or _opt(self.config, "bulkhead_write_expectations")
            )
        return self._collects

    def results(self) -> Results:
        if self._results is None:
            from bulkhead.results import Results

            self._results = Results()
        return self._results

    def requested_profile(self) -> str | None:
        value = self.config.getoption("hypothesis_profile", None)
        return str(value) if value else None

    def chosen_settings(self) -> settings | None:
        """Our hypothesis settings, or None when the user chose a profile themselves."""
        if self.requested_profile():
            return None
        if self._chosen is None:
            from bulkhead import profiles

            self._chosen = profiles.profile(profiles.default_name())
        return self._chosen

    def preflight(self) -> None:
        from bulkhead.errors import BulkheadError
        from bulkhead.suite import preflight

        self.preflight_done = True
        try:
            preflight(self.options())
        except BulkheadError as exc:
            raise pytest.UsageError(str(exc)) from exc

    def _add_junit_properties(self) -> None:
        if self.junit_done or hasattr(self.config, "workerinput"):
            return
        self.junit_done = True
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        from bulkhead.host import probe_host

        for key, value in self.summary().items():
            xml.add_global_property(f"bulkhead_{key}", value)
        xml.add_global_property("bulkhead_cgroups", probe_host().cgroups.describe())
        xml.add_global_property("bulkhead_expectations", self.expectations()[1])
        xml.add_global_property("bulkhead_profile", self.profile())

    # --- hooks -------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if not self.visible():
            return []
        from bulkhead import profiles
        from bulkhead.host import probe_host
        from bulkhead.suite import needs_hidden_controllers

        info = self.summary()
        host = probe_host()
        lines = [
            f"bulkhead: runtime {info.get('runtime_path', info['runtime'])} "
            f"({info.get('runtime_version') or info.get('runtime_error')})"
        ]
        lines += [f"bulkhead: {line}" for line in host.describe()]
        if "runtime_path" in info:
            choice = str(_opt(config, "bulkhead_hide_cgroup2_controllers") or "auto")
            path = Path(info["runtime_path"])
            if needs_hidden_controllers(choice, path, host, info["runtime_version"]):
                lines.append(
                    "bulkhead: runtime calls run in a private mount namespace where cgroup2 "
                    f"lists no controllers (--hide-cgroup2-controllers {choice})"
                )
        lines.append("bulkhead: expectations: " + self._describe_expectations())
        lines.append("bulkhead: profile " + self._describe_profile())
        lines.append("bulkhead: property tests: " + profiles.describe(self.requested_profile()))
        return lines

    def _describe_profile(self) -> str:
        from bulkhead import disputes

        return disputes.describe(self.profile())

    def _describe_expectations(self) -> str:
        entries, source = self.expectations()
        if source == "--no-expectations":
            return "none applied (--no-expectations: strict)"
        if source == "none":
            name = Path(runtime_name(self.config)).name
            return f"none (the suite has no file for {name!r}; --expectations FILE names one)"
        version = self.version()
        applying = sum(e.applies_to(version, profile=self.profile()) for e in entries)
        shown = ".".join(map(str, version)) if version else "an unknown version"
        return f"{source} ({len(entries)} entries, {applying} apply to {shown})"

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        import time

        self.started = time.monotonic()
        if hasattr(self.config, "workerinput") or not self.visible():
            return
        self._add_junit_properties()
        # Under xdist the workers collect, and a usage error raised in a worker is an internal
        # error of the controller: check on the controller, before the workers start.
        if self.config.pluginmanager.hasplugin("dsession") and not self.config.option.collectonly:
            self.preflight()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["bulkhead_preflight"] = self.preflight_done

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if self.selected is not None:
            from bulkhead.gate import selected

            def named(item: pytest.Item) -> list[str]:
                return [str(i) for mark in item.iter_markers("spec") for i in mark.args]

            keep = [item for item in items if selected(named(item), self.selected)]
            kept = {id(item) for item in keep}
            dropped = [item for item in items if id(item) not in kept]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = keep
                # An expectation naming a test the selection left out is not stale.
                entries, _ = self.expectations()
                self.used.update(
                    e.test for e in entries for item in dropped if e.matches(item.nodeid)
                )
        ours = [item for item in items if self.explicit or uses_suite(item)]
        if not ours:
            return
        from bulkhead import profiles, requirements
        from bulkhead.errors import BulkheadError
        from bulkhead.host import probe_host

        host = probe_host()
        entries, _ = self.expectations()
        version = self.version()
        runtime = Path(runtime_name(config)).name
        # Files whose expectations can be judged: an entry for a module that was not collected
        # at all (a -k or single-file run) is not stale, just not in this run.
        self.files.update(item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for item in ours)
        for item in ours:
            ids = [str(i) for mark in item.iter_markers("spec") for i in mark.args]
            if ids:
                item.user_properties.append(("spec", " ".join(ids)))
            for mark in item.iter_markers("requires"):
                try:
                    reasons = requirements.unmet(mark.args, host)
                except BulkheadError as exc:
                    if not self.in_worker:
                        raise pytest.UsageError(f"{item.nodeid}: {exc}") from exc
                    item.stash[_error_key] = f"{item.nodeid}: {exc}"
                    continue
                if reasons:
                    item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))
            for exp in entries:
                if not exp.matches(item.nodeid):
                    continue
                if exp.applies_to(version, profile=self.profile()):
                    self.used.add(exp.test)
                    item.add_marker(
                        pytest.mark.xfail(strict=exp.strict, reason=exp.describe(runtime))
                    )
                else:
                    self.inapplicable.add(exp.test)
            if uses_suite(item) and hasattr(item, "obj"):
                function = getattr(item.obj, "__func__", item.obj)
                if getattr(function, "is_hypothesis_test", False):
                    chosen = self.chosen_settings()
                    if chosen is not None:
                        profiles.apply(function, chosen)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.preflight_done or self.config.option.collectonly:
            return
        if any(uses_suite(item) for item in session.items):
            try:
                self.preflight()
            except pytest.UsageError as exc:
                if not self.in_worker:
                    raise
                self.worker_error = str(exc)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(_error_key, None)
        if error is None and self.worker_error is not None and uses_suite(item):
            error = self.worker_error
        if error is not None:
            pytest.fail(error, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        # Settings a test builds while it runs (a state machine's) inherit ours, for our tests
        # only and only while they run. hypothesis is not imported for a test that does not.
        if not (uses_suite(item) and "hypothesis" in sys.modules):
            return (yield)
        chosen = self.chosen_settings()
        if chosen is None:
            return (yield)
        from bulkhead import profiles

        with profiles.scoped_default(chosen):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        state = item.stash.get(_item_key, None)
        if state is None:
            return report
        factory = state.suite.factory
        if report.failed and not state.reported:
            state.reported = True
            kept = factory.settle(failed=True) if factory.keep_failed else []
            for title, text in _failure_sections(state, kept):
                _attach(report, title, text)
        elif report.when == "teardown":
            factory.settle(failed=False)
        if report.when == "teardown" and self.collects_results():
            # Every call of the test, for the gate's reports; plain data, so it crosses from an
            # xdist worker to the controller with the report.
            from bulkhead.results import call_record

            calls = state.suite.log.since(state.mark)
            report.bulkhead_calls = [call_record(c) for c in calls]  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.collects_results() and not self.in_worker:
            self.results().add(report)
        ids = dict(report.user_properties).get("spec")
        if not ids:
            return
        self._add_junit_properties()
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            xfailed = hasattr(report, "wasxfail") and report.skipped
            outcome = "xfailed" if xfailed else report.outcome
        elif report.failed:  # a teardown error, e.g. the leak sentinel
            outcome = "failed"
        else:
            return
        self.ledger().record(report.nodeid, str(ids).split(), outcome)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Closed here, not in the fixture's teardown: the last test's verdict (and with it
        # whether its bundles are kept) is known only once its teardown has been reported.
        if self.suite is not None:
            self.suite.close()
            self.suite = None
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_WORKER_OUTPUT] = {
                "files": sorted(self.files),
                "used": sorted(self.used),
                "inapplicable": sorted(self.inapplicable),
            }

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # The controller collects nothing under xdist: what the workers matched comes back here.
        self.workers += 1
        data = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
        if data:
            self.files.update(data["files"])
            self.used.update(data["used"])
            self.inapplicable.update(data["inapplicable"])

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        if self.collects_results():
            for line in self._write_gate_reports():
                terminalreporter.write_line("bulkhead: " + line)
        if self.visible() or self.files:
            terminalreporter.write_line("bulkhead: profile " + self._describe_profile())
        if self._ledger is not None and self._ledger.verdicts:
            terminalreporter.write_line("bulkhead: " + self._ledger.summary())
            target = _opt(config, "bulkhead_spec_report")
            if target:
                self._ledger.write(Path(target))
                terminalreporter.write_line(f"bulkhead: spec report written to {target}")
        if not self.files:
            return
        entries, _ = self.expectations()
        in_run = [e for e in entries if e.test.split("::", 1)[0] in self.files]
        version = self.version()
        profile = self.profile()
        other = [e for e in in_run if not e.applies_to(version, profile=profile)]
        if other:
            shown = ".".join(map(str, version)) if version else "an unknown version"
            why = "other versions"
            if any(e.profiles is not None and profile not in e.profiles for e in other):
                why = f"other versions or profiles; this run's profile is {profile}"
            terminalreporter.write_line(
                f"bulkhead: expectations not applied to {runtime_name(config)} {shown} "
                f"(written for {why}): " + ", ".join(f"{e.test} ({e.conditions()})" for e in other)
            )
        stale = [
            e.test
            for e in in_run
            if e.applies_to(version, profile=profile) and e.test not in self.used
        ]
        if stale:
            terminalreporter.write_line(
                "bulkhead: expectations that matched no collected test: " + ", ".join(stale),
                yellow=True,
            )

    def _write_gate_reports(self) -> list[str]:
        import time

        from bulkhead import gate
        from bulkhead.host import probe_host
        from bulkhead.results import RunInfo

        info = self.summary()
        results = self.results()
        run = RunInfo(
            runtime=info["runtime"],
            runtime_version=info.get("runtime_version", ""),
            runtime_path=info.get("runtime_path", ""),
            wall_seconds=time.monotonic() - self.started if self.started else 0.0,
            workers=max(self.workers, 1),
            host=probe_host().describe(),
            expectations=self._describe_expectations(),
            profile=self.profile(),
            suite_version=gate.suite_version(),
            selected=self.selected,
        )
        lines = gate.write_reports(results, run, self.gate_targets())
        baseline = _opt(self.config, "bulkhead_write_expectations")
        if baseline:
            name = Path(runtime_name(self.config)).name
            path, count = gate.write_baseline(baseline, results, name, self.version())
            lines.append(f"expectations baseline ({count} entries) written to {path}")
        return lines


# --- failure reports -------------------------------------------------------------------------


def _failure_sections(state: _ItemState, kept: list[Path]) -> list[tuple[str, str]]:
    """The runtime calls of the test (of its final hypothesis example), then each container's
    stdio and config.json, then the kept bundles: what a runtime developer needs from a CI
    artifact."""
    from bulkhead.report import describe_calls, final_example

    suite = state.suite
    calls = suite.log.since(state.mark)
    shown = final_example(calls)
    sections = []
    if calls:
        lines = []
        left_out = len(calls) - len(shown)
        if left_out:
            shown_ids = {id(c) for c in shown}
            earlier = len({c.example for c in calls if id(c) not in shown_ids})
            lines.append(
                f"(the final hypothesis example only: {left_out} calls of {earlier} earlier "
                "examples left out)"
            )
        lines.append(describe_calls(shown))
        sections.append((f"runtime calls ({suite.client.name})", "\n".join(lines)))
    records = final_example(suite.factory.records)
    if records:
        kept_set = set(kept)
        text = "\n".join(r.describe(kept=r.path in kept_set) for r in records)
        sections.append(("containers", text))
    if kept:
        sections.append(("kept bundles", "\n".join(str(p) for p in kept)))
    return sections


def _attach(report: pytest.TestReport, title: str, text: str) -> None:
    """Adds a section to the failure itself: the terminal shows it with the traceback, and the
    JUnit XML carries it in the <failure>/<error> text, which every JUnit consumer shows (a
    report section would reach the XML only with junit_logging set)."""
    longrepr = report.longrepr
    addsection = getattr(longrepr, "addsection", None)  # pytest's ExceptionRepr
    if callable(addsection):
        addsection(title, text)
    else:
        rule = f" {title} ".center(80, "-")
        report.longrepr = f"{longrepr}\n{rule}\n{text}"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bulkhead_suite(request: pytest.FixtureRequest) -> Suite:
    from bulkhead.errors import BulkheadError
    from bulkhead.suite import Suite

    config = request.config
    session = config.stash[_session_key]
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    try:
        session.suite = Suite(session.options(), worker=worker)
    except BulkheadError as exc:
        # Past the preflight this is rare (a cache directory that cannot be written); it
        # would fail every test, so it ends the session with the reason.
        pytest.exit(f"bulkhead: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    # Closed by BulkheadSession.pytest_sessionfinish.
    return session.suite


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
    from bulkhead.host import probe_host

    return probe_host()


@pytest.fixture
def dispute(request: pytest.FixtureRequest) -> Ask:
    """``dispute(name)``: what the active --spec-profile accepts on a behaviour runtimes dispute
    (bulkhead.disputes). Each outcome a test reaches is kept in its report's properties."""
    from bulkhead import disputes

    profile = request.config.stash[_session_key].profile()
    seen: list[str] = []

    def record(text: str) -> None:
        if text not in seen:  # a state machine asks again at every step
            seen.append(text)
            request.node.user_properties.append(("dispute", text))

    def ask(name: str) -> disputes.Ruling:
        return disputes.ruling(name, profile, record)

    return ask


@pytest.fixture(autouse=True)
def _bulkhead_leak_sentinel(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that leaves mounts, cgroups, processes, devices or state behind.

    It engages only for tests that use the suite's fixtures; for any other test it is a no-op.
    """
    if SUITE_FIXTURE not in request.fixturenames:
        yield
        return
    suite: Suite = request.getfixturevalue(SUITE_FIXTURE)
    suite.log.trim()  # the previous test's calls are reported already
    suite.factory.begin()
    request.node.stash[_item_key] = _ItemState(suite, suite.log.mark())
    before = suite.sentinel.snapshot()
    yield
    leaks = suite.sentinel.leaks(before)
    if leaks:
        problems = suite.sentinel.clean(leaks, suite.delete_state)
        text = "\n".join("  " + leak.describe() for leak in leaks)
        if problems:
            text += "\nand could not remove:\n" + "\n".join("  " + p for p in problems)
        pytest.fail(f"the test left behind:\n{text}", pytrace=False)
