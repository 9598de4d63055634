"""The disputed behaviours (bulkhead.disputes), the rulings tests ask for, and --spec-profile in a
pytest session: the option, the ``dispute`` fixture, the report lines, and expectations bound to
a profile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bulkhead import catalogue, disputes
from bulkhead.disputes import DISPUTES, Ruling
from bulkhead.options import DEFAULT_PROFILE, PROFILES
from bulkhead.results import Results, RunInfo

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "profiles.md"
THREAD = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+$")


# --- the records --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DISPUTES))
def test_each_record_rules_for_every_profile_with_outcomes_it_names(name: str) -> None:
    d = DISPUTES[name]
    assert d.id == name
    assert set(d.accepts) == set(PROFILES)
    for profile in PROFILES:
        accepted = d.accepted(profile)
        assert accepted, f"{name}: {profile} accepts nothing, so every runtime would fail"
        assert set(accepted) <= set(d.outcomes), f"{name}: {profile} names unknown outcomes"
    assert d.runc_outcome in d.outcomes and d.reference_outcome in d.outcomes


@pytest.mark.parametrize("name", list(DISPUTES))
def test_runc_compatible_accepts_runcs_outcome_and_every_profile_the_references(name: str) -> None:
    d = DISPUTES[name]
    assert d.runc_outcome in d.accepted("runc-compatible")
    # The reference runtime follows the spec: no profile may fail it.
    for profile in PROFILES:
        assert d.reference_outcome in d.accepted(profile), (name, profile)


@pytest.mark.parametrize("name", list(DISPUTES))
def test_each_record_cites_the_catalogue_a_short_quote_and_real_threads(name: str) -> None:
    d = DISPUTES[name]
    known = catalogue.load()
    missing = [i for i in d.spec_ids if i not in known]
    assert not missing, f"{name} names requirement ids the catalogue does not have: {missing}"
    assert d.section_url == known[d.spec_ids[0]].url
    assert d.section_url.startswith(catalogue.SPEC_URL)
    # The spec's own words, one sentence, kept short.
    assert "MUST" in d.quote and len(d.quote) <= 160 and d.quote.endswith(".")
    assert d.threads, f"{name} cites no thread"
    for url in d.threads:
        assert THREAD.match(url), url
    assert len(set(d.threads)) == len(d.threads)


def test_the_profiles_differ_where_runc_differs_from_the_spec() -> None:
    # runc's outcome is outside strict exactly where runc deviates; a profile that accepted
    # runc's outcome everywhere would make strict meaningless, and the converse runc-compatible.
    deviating = {n for n, d in DISPUTES.items() if d.runc_outcome not in d.accepted("strict")}
    assert deviating == {"delete-created", "poststart-order", "poststart-failure"}


# --- rulings ------------------------------------------------------------------------------------


def test_a_ruling_accepts_what_its_profile_accepts() -> None:
    strict = disputes.ruling("delete-created", "strict")
    compatible = disputes.ruling("delete-created", "runc-compatible")
    assert strict.accepts("refused") and not strict.accepts("deleted")
    assert compatible.accepts("refused") and compatible.accepts("deleted")
    assert disputes.ruling("delete-created").profile == DEFAULT_PROFILE == "strict"


def test_require_passes_an_accepted_outcome_and_records_it() -> None:
    seen: list[str] = []
    ruling = disputes.ruling("poststart-order", "runc-compatible", seen.append)
    ruling.require("during-create")
    ruling.require("after-program")
    assert seen == [
        "poststart-order: during-create (runc-compatible)",
        "poststart-order: after-program (runc-compatible)",
    ]


def test_require_fails_a_refused_outcome_quoting_the_spec_and_naming_the_other_profile() -> None:
    seen: list[str] = []
    ruling = disputes.ruling("delete-created", "strict", seen.append)
    with pytest.raises(AssertionError) as info:
        ruling.require("deleted")
    text = str(info.value)
    assert text.startswith("delete without --force exits 0 after killing the init")
    assert "the strict profile does not accept this" in text
    assert DISPUTES["delete-created"].quote in text
    assert "--spec-profile runc-compatible accepts it" in text
    assert seen == ["delete-created: deleted (strict)"]  # recorded even when it fails


def test_an_outcome_no_profile_accepts_gives_no_hint() -> None:
    with pytest.raises(AssertionError) as info:
        disputes.ruling("poststart-failure", "runc-compatible").require("warned")
    assert "accepts it" not in str(info.value)
    assert "the runc-compatible profile does not accept this" in str(info.value)


def test_a_misspelt_outcome_or_name_or_profile_is_an_error_not_a_verdict() -> None:
    ruling = disputes.ruling("kill-signal-syntax", "strict")
    with pytest.raises(KeyError, match="no outcome 'deliverd'"):
        ruling.accepts("deliverd")
    with pytest.raises(KeyError, match="no outcome 'deliverd'"):
        ruling.require("deliverd")
    with pytest.raises(KeyError, match="no dispute 'delete-creatd'"):
        disputes.ruling("delete-creatd")
    with pytest.raises(ValueError, match="unknown profile 'runc'"):
        disputes.ruling("delete-created", "runc")
    with pytest.raises(ValueError, match="unknown profile"):
        Ruling(DISPUTES["delete-created"], "lenient").accepts("refused")


def test_describe_names_the_profile_and_the_doc() -> None:
    assert disputes.describe("strict") == (
        "strict (the spec's words on 5 disputed behaviours; see docs/profiles.md)"
    )
    assert disputes.describe("runc-compatible").startswith(
        "runc-compatible (the spec's words, or what runc does"
    )


# --- the reports --------------------------------------------------------------------------------


def test_the_markdown_and_html_reports_say_which_profile_ran() -> None:
    from bulkhead import report_formats, report_html

    info = RunInfo(runtime="runc", profile="runc-compatible")
    md = report_formats.render_markdown(Results(), info)
    assert "Profile: runc-compatible (the spec's words, or what runc does" in md
    page = report_html.render_html(Results(), info)
    assert "<tr><th>profile</th><td>runc-compatible (" in page
    assert "Profile: strict (" in report_formats.render_markdown(Results(), RunInfo("runc"))


def test_the_certificate_records_the_profile() -> None:
    from bulkhead import certify

    runtime = {"name": "runc", "path": "/usr/sbin/runc", "version": "1.1.5", "sha256": "0" * 64}
    host = {"kernel": "6.1", "distribution": "Debian", "cgroups": "hybrid", "cpu": "x"}
    cert = certify.build_certificate(
        Results(), runtime, host, "0.1.0", 0, (), set(), profile="runc-compatible"
    )
    assert cert["profile"] == "runc-compatible"
    assert "| profile | runc-compatible (see docs/profiles.md) |" in certify.render_markdown(cert)
    plain = certify.build_certificate(Results(), runtime, host, "0.1.0", 0, (), set())
    assert plain["profile"] == "strict"
    command = certify.pytest_command("runc", Path("/out"), [], "runc-compatible")
    assert "--spec-profile=runc-compatible" in command


def test_certify_passes_the_profile_to_the_suite_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import subprocess

    from bulkhead import certify, cli

    seen: list[list[str]] = []

    def fake_run(command: list[str], cwd: Path, check: bool) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        jsonl = next(a.split("=", 1)[1] for a in command if a.startswith("--jsonl-report="))
        Path(jsonl).write_text("")
        return subprocess.CompletedProcess(command, 0)

    runtime = {"name": "runc", "path": "/usr/sbin/runc", "version": "1.1.5", "sha256": "0" * 64}
    monkeypatch.setattr(certify.subprocess, "run", fake_run)
    monkeypatch.setattr(certify, "runtime_facts", lambda name: runtime)
    host = {"kernel": "6.1", "distribution": "D", "cgroups": "hybrid", "cpu": "x"}
    monkeypatch.setattr(certify, "host_facts", lambda: host)
    out = tmp_path / "cert"
    args = ["certify", "--runtime", "runc", "--out", str(out)]
    cli.main([*args, "--spec-profile", "runc-compatible"])
    assert "--spec-profile=runc-compatible" in seen[-1]
    assert json.loads((out / "certificate.json").read_text())["profile"] == "runc-compatible"
    assert "[profile runc-compatible]" in capsys.readouterr().out
    cli.main(args)
    assert "--spec-profile=strict" in seen[-1]
    assert json.loads((out / "certificate.json").read_text())["profile"] == "strict"
    # A profile hidden after -- would run one profile and certify another: refused.
    assert cli.main([*args, "--", "--spec-profile=runc-compatible"]) == 2
    assert "give --spec-profile to certify, not after --" in capsys.readouterr().err


def test_certify_refuses_a_profile_given_after_the_separator(tmp_path: Path) -> None:
    from bulkhead import certify
    from bulkhead.errors import UsageError

    with pytest.raises(UsageError, match="give --spec-profile to certify, not after --"):
        certify.certify("runc", tmp_path, ["--spec-profile=runc-compatible"])
    with pytest.raises(UsageError, match="unknown profile 'loose'"):
        certify.certify("runc", tmp_path, [], "loose")


# --- the docs -----------------------------------------------------------------------------------


@pytest.mark.skipif(not DOC.is_file(), reason="docs/profiles.md is not beside this install")
def test_docs_profiles_carries_every_record_its_quote_and_threads() -> None:
    text = DOC.read_text()
    for d in DISPUTES.values():
        assert f"`{d.id}`" in text, d.id
        assert d.quote in text, d.id
        assert d.section_url in text, d.id
        for url in d.threads:
            assert url in text, url
    gate = DOC.parent / "gate.md"
    assert "profiles.md" in gate.read_text()


# --- in a pytest session ------------------------------------------------------------------------

RULED = """
def test_ruled(dispute):
    ruling = dispute("delete-created")
    print("PROFILE", ruling.profile)
    ruling.require("deleted")
"""

BOUND = """
[[expect]]
test = "test_bound.py::test_ruled"
reason = "deletes a created container"
spec = "runtime.delete.3"
profiles = ["strict"]
"""


def test_the_fixture_follows_the_option_and_the_header_and_summary_name_it(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile(test_bound=RULED)
    strict = pytester.runpytest("-p", "no:cacheprovider", f"--runtime={fake_runtime}", "-s")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["bulkhead: profile strict (the spec's words*", "*PROFILE strict"])
    assert "the strict profile does not accept this" in strict.stdout.str()
    compatible = pytester.runpytest(
        "-p", "no:cacheprovider", f"--runtime={fake_runtime}", "--spec-profile=runc-compatible"
    )
    compatible.assert_outcomes(passed=1)
    lines = compatible.stdout.lines
    # The header names it, and so does the terminal summary at the end.
    assert sum(line.startswith("bulkhead: profile runc-compatible (") for line in lines) == 2


def test_an_expectation_bound_to_strict_applies_under_strict_only(
    pytester: pytest.Pytester, fake_runtime: Path
) -> None:
    pytester.makepyfile(test_bound=RULED)
    (pytester.path / "exp.toml").write_text(BOUND)
    args = ("-p", "no:cacheprovider", f"--runtime={fake_runtime}", "--expectations=exp.toml")
    strict = pytester.runpytest(*args)
    strict.assert_outcomes(xfailed=1)
    strict.stdout.fnmatch_lines(["bulkhead: expectations: exp.toml (1 entries, 1 apply to 9.9)"])
    compatible = pytester.runpytest(*args, "--spec-profile=runc-compatible")
    # Under runc-compatible the test passes: no strict XPASS, and the entry is said not to apply.
    compatible.assert_outcomes(passed=1)
    assert compatible.ret == pytest.ExitCode.OK
    compatible.stdout.fnmatch_lines(
        [
            "bulkhead: expectations: exp.toml (1 entries, 0 apply to 9.9)",
            "bulkhead: expectations not applied to * 9.9 (written for other versions or "
            "profiles; this run's profile is runc-compatible): test_bound.py::test_ruled "
            "(profile strict)",
        ]
    )
    assert "matched no collected test" not in compatible.stdout.str()


def test_an_unknown_profile_is_a_usage_error(pytester: pytest.Pytester, fake_runtime: Path) -> None:
    pytester.makepyfile(test_bound=RULED)
    bad = pytester.runpytest("-p", "no:cacheprovider", "--spec-profile=lenient")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'lenient'" in bad.stderr.str()
    # The ini key is not checked by the option's choices: the plugin checks it.
    pytester.makeini("[pytest]\nbulkhead_spec_profile = lenient\n")
    ini = pytester.runpytest("-p", "no:cacheprovider", f"--runtime={fake_runtime}")
    assert ini.ret == pytest.ExitCode.USAGE_ERROR
    assert "--spec-profile lenient: give one of strict, runc-compatible" in ini.stderr.str()


def test_a_run_of_another_project_prints_no_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "bulkhead: profile" not in result.stdout.str()
