"""Expectations files: parsing, matching node ids, and finding the bundled file for a runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.errors import UsageError
from bulkhead.expectations import Expectation, load, parse
from bulkhead.options import PROFILES

ONE = """
[[expect]]
test = "test_lifecycle.py::test_delete_of_a_created_container_without_force_errors"
reason = "deletes a created container without --force"
spec = "runtime.delete.3"
"""

TWO = (
    ONE
    + """
[[expect]]
test = "test_pid_namespace.py::test_init_is_pid_1[runc]"
reason = "some reason"
spec = "config.linux.namespaces.1"
"""
)


def test_parse_reads_every_entry_in_order() -> None:
    assert parse(TWO, "two.toml") == [
        Expectation(
            "test_lifecycle.py::test_delete_of_a_created_container_without_force_errors",
            "deletes a created container without --force",
            "runtime.delete.3",
        ),
        Expectation(
            "test_pid_namespace.py::test_init_is_pid_1[runc]",
            "some reason",
            "config.linux.namespaces.1",
        ),
    ]


def test_a_file_without_entries_expects_nothing() -> None:
    assert parse("# nothing known yet\n", "empty.toml") == []


@pytest.mark.parametrize("missing", ["test", "reason", "spec"])
def test_an_entry_missing_a_key_is_a_usage_error_naming_the_entry(missing: str) -> None:
    second = {"test": "t.py::t", "reason": "r", "spec": "s"}
    del second[missing]
    body = "".join(f'{key} = "{value}"\n' for key, value in second.items())
    with pytest.raises(UsageError) as info:
        parse(f"{ONE}\n[[expect]]\n{body}", "mine.toml")
    assert (
        str(info.value) == f"expectations mine.toml: entry 2 needs a non-empty string for {missing}"
    )


def test_an_entry_with_an_empty_value_counts_as_missing() -> None:
    with pytest.raises(UsageError, match="entry 1 needs a non-empty string for reason, spec"):
        parse('[[expect]]\ntest = "t.py::t"\nreason = ""\n', "mine.toml")


def test_bad_toml_is_a_usage_error_naming_the_source() -> None:
    with pytest.raises(UsageError, match=r"failed to read expectations broken\.toml"):
        parse("[[expect]\ntest = ", "broken.toml")


def test_a_single_bracket_table_is_a_usage_error() -> None:
    # "[expect]" for "[[expect]]" is the likely typo; it must read as a usage error.
    with pytest.raises(UsageError):
        parse('[expect]\ntest = "t.py::t"\nreason = "r"\nspec = "s"\n', "typo.toml")


# --- matching node ids ----------------------------------------------------------------------------

EXPECTED = Expectation("test_lifecycle.py::test_kill", "reason", "runtime.kill.1")


@pytest.mark.parametrize(
    "nodeid",
    [
        "test_lifecycle.py::test_kill",
        "conformance/test_lifecycle.py::test_kill",
        "/abs/path/conformance/test_lifecycle.py::test_kill",
    ],
)
def test_matches_the_node_id_or_its_end_after_a_slash(nodeid: str) -> None:
    assert EXPECTED.matches(nodeid)


@pytest.mark.parametrize(
    "nodeid",
    [
        "conformance/other_test_lifecycle.py::test_kill",  # file name merely ends the same
        "conformance/test_lifecycle.py::test_kill_twice",  # test name merely starts the same
        "conformance/test_lifecycle.py::test_kill[runc]",  # a parametrised instance
        "test_lifecycle.py",
        "lifecycle.py::test_kill",
    ],
)
def test_does_not_match_a_partial_name(nodeid: str) -> None:
    assert not EXPECTED.matches(nodeid)


def test_a_parametrised_id_is_matched_when_named_exactly() -> None:
    exp = Expectation("test_lifecycle.py::test_kill[KILL]", "r", "s")
    assert exp.matches("conformance/test_lifecycle.py::test_kill[KILL]")
    assert not exp.matches("conformance/test_lifecycle.py::test_kill[TERM]")


def test_describe_names_the_runtime_reason_and_spec_id() -> None:
    assert EXPECTED.describe("crun") == "crun: reason (spec runtime.kill.1)"


# --- loading --------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_load_finds_the_bundled_file_for_a_runtime(runtime: str) -> None:
    loaded, source = load(None, runtime)
    assert Path(source).parts[-3:] == ("conformance", "expectations", f"{runtime}.toml")
    assert loaded == parse(Path(source).read_text(), source)
    assert all(e.test and e.reason and e.spec for e in loaded)


def test_the_bundled_runc_file_expects_the_delete_deviation() -> None:
    loaded, _ = load(None, "runc")
    assert any(e.spec == "runtime.delete.3" for e in loaded)


def test_load_of_a_runtime_without_a_bundled_file_expects_nothing() -> None:
    assert load(None, "no-such-runtime") == ([], "none")


def test_load_reads_a_given_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(ONE)
    loaded, source = load(path, "runc")
    assert source == str(path)
    assert [e.spec for e in loaded] == ["runtime.delete.3"]


def test_load_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(UsageError, match=f"--expectations {missing}: no such file"):
        load(missing, "runc")


# --- versions -------------------------------------------------------------------------------------

from bulkhead.expectations import VersionRange, parse_version  # noqa: E402


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("runc version 1.1.5+ds1\ncommit: v1.1.5\nspec: 1.0.2-dev", (1, 1, 5)),
        ("crun version 1.8.1\ncommit: abc\nrundir: /run/crun", (1, 8, 1)),
        ("youki version 0.7.0", (0, 7, 0)),
        ("v1.2.0-rc.1", (1, 2, 0)),
        ("unknown (exit 1, no output)", None),
        ("", None),
    ],
)
def test_the_version_is_the_first_dotted_number_of_the_output(
    text: str, expected: tuple[int, ...] | None
) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    ("versions", "inside", "outside"),
    [
        (">=1.8.0, <1.9", [(1, 8), (1, 8, 0), (1, 8, 1), (1, 8, 99)], [(1, 7, 9), (1, 9), (1, 27)]),
        ("1.8.1", [(1, 8, 1)], [(1, 8), (1, 8, 2)]),
        ("==1.8", [(1, 8, 0)], [(1, 8, 1)]),
        ("!=1.2.3, >1.0", [(1, 2, 4), (1, 0, 1)], [(1, 2, 3), (1, 0)]),
        ("<=2", [(2, 0, 0), (1, 99)], [(2, 0, 1)]),
    ],
)
def test_a_version_range_is_a_conjunction_of_comparisons(
    versions: str, inside: list[tuple[int, ...]], outside: list[tuple[int, ...]]
) -> None:
    span = VersionRange.parse(versions)
    assert all(span.contains(v) for v in inside)
    assert not any(span.contains(v) for v in outside)


def test_an_entry_with_versions_applies_only_to_those() -> None:
    (entry,) = parse(ONE + 'versions = ">=1.8.0, <1.9"\n', "mine.toml")
    assert entry.applies_to((1, 8, 1))
    assert not entry.applies_to((1, 27, 0))
    assert not entry.applies_to(None)  # an unknown version cannot be said to deviate
    assert "measured on >=1.8.0, <1.9" in entry.describe("crun")


def test_an_entry_without_versions_applies_to_every_version() -> None:
    (entry,) = parse(ONE, "mine.toml")
    assert entry.applies_to((99,)) and entry.applies_to(None)


@pytest.mark.parametrize("bad", ['"~1.8"', '">= 1.8, <"', '""', "18", '"1.8; 1.9"'])
def test_bad_versions_are_a_usage_error_naming_the_entry(bad: str) -> None:
    with pytest.raises(UsageError, match="entry 1 versions: "):
        parse(ONE + f"versions = {bad}\n", "mine.toml")


def test_an_unknown_key_is_a_usage_error() -> None:
    # "version" for "versions" would otherwise make the entry apply to every release.
    with pytest.raises(UsageError, match="entry 1 has unknown keys version"):
        parse(ONE + 'version = "1.8.1"\n', "mine.toml")


@pytest.mark.parametrize(("runtime", "measured"), [("runc", (1, 1, 5)), ("crun", (1, 8, 1))])
def test_bundled_entries_say_the_versions_they_were_measured_on(
    runtime: str, measured: tuple[int, ...]
) -> None:
    entries, _ = load(None, runtime)
    assert entries and all(e.versions is not None for e in entries)
    # Each on a host of a layout it was measured on (an entry may hold on v2 hosts only).
    hosts = [min(e.cgroup) if e.cgroup else "hybrid" for e in entries]
    assert all(e.applies_to(measured, host) for e, host in zip(entries, hosts, strict=True))
    # A newer release (crun 1.27, runc 1.5) is not expected to deviate the same way.
    newer = (measured[0], measured[1] + 19, 0)
    assert not any(e.applies_to(newer, host) for e, host in zip(entries, hosts, strict=True))


def test_an_entry_with_a_cgroup_condition_applies_only_on_those_layouts() -> None:
    (entry,) = parse(ONE + 'cgroup = "v2"\n', "mine.toml")
    assert entry.cgroup == frozenset({"v2"})
    assert entry.applies_to(None, "v2")
    assert not entry.applies_to(None, "hybrid") and not entry.applies_to(None, "v1")
    assert "measured on cgroup v2" in entry.describe("runc")
    (both,) = parse(ONE + 'versions = "1.1.5"\ncgroup = ["v1", "hybrid"]\n', "mine.toml")
    assert both.applies_to((1, 1, 5), "v1") and both.applies_to((1, 1, 5), "hybrid")
    assert not both.applies_to((1, 1, 5), "v2")
    assert not both.applies_to((1, 2, 0), "hybrid")  # both conditions must hold
    assert both.conditions() == "1.1.5; cgroup hybrid/v1"


def test_an_entry_without_a_cgroup_condition_applies_on_every_layout() -> None:
    (entry,) = parse(ONE, "mine.toml")
    assert entry.cgroup is None
    assert all(entry.applies_to(None, layout) for layout in ("v1", "hybrid", "v2"))


def test_the_condition_is_judged_by_this_hosts_layout_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bulkhead.expectations as e

    (entry,) = parse(ONE + 'cgroup = "v2"\n', "mine.toml")
    monkeypatch.setattr(e, "host_cgroup_layout", lambda: "v2")
    assert entry.applies_to(None)
    monkeypatch.setattr(e, "host_cgroup_layout", lambda: "hybrid")
    assert not entry.applies_to(None)


def test_the_hosts_layout_is_named_as_the_condition_names_it() -> None:
    from bulkhead.expectations import host_cgroup_layout
    from bulkhead.host import probe_host

    names = {"legacy": "v1", "hybrid": "hybrid", "unified": "v2"}
    assert host_cgroup_layout() == names[probe_host().cgroups.mode]


@pytest.mark.parametrize("bad", ['"unified"', "2", "[]", '["v2", "v3"]', '""'])
def test_a_bad_cgroup_condition_is_a_usage_error_naming_the_entry(bad: str) -> None:
    with pytest.raises(UsageError, match="entry 1 cgroup: give one of hybrid, v1, v2"):
        parse(ONE + f"cgroup = {bad}\n", "mine.toml")


# --- profiles: entries bound to a --spec-profile (bulkhead.disputes) ------------------------------


def test_an_entry_bound_to_strict_applies_under_strict_only() -> None:
    (entry,) = parse(ONE + 'versions = "1.1.5"\nprofiles = ["strict"]\n', "mine.toml")
    assert entry.profiles == frozenset({"strict"})
    assert entry.applies_to((1, 1, 5), "hybrid")  # the default profile is strict
    assert entry.applies_to((1, 1, 5), "hybrid", profile="strict")
    assert not entry.applies_to((1, 1, 5), "hybrid", profile="runc-compatible")
    assert not entry.applies_to((1, 2, 0), "hybrid", profile="strict")  # both must hold
    assert entry.conditions() == "1.1.5; profile strict"
    assert "measured on 1.1.5; profile strict" in entry.describe("runc")


def test_an_entry_without_profiles_applies_under_every_profile() -> None:
    (entry,) = parse(ONE, "mine.toml")
    assert entry.profiles is None
    assert all(entry.applies_to(None, "hybrid", profile=p) for p in PROFILES)
    (both,) = parse(ONE + f"profiles = {list(PROFILES)!r}\n".replace("'", '"'), "mine.toml")
    assert all(both.applies_to(None, "hybrid", profile=p) for p in PROFILES)
    assert both.conditions() == "profile strict/runc-compatible"


@pytest.mark.parametrize("bad", ['"strict"', "[]", '["strict", "lenient"]', "[1]", "true"])
def test_a_bad_profiles_condition_is_a_usage_error_naming_the_entry(bad: str) -> None:
    with pytest.raises(UsageError, match=r"entry 1 profiles: give a list of profile names"):
        parse(ONE + f"profiles = {bad}\n", "mine.toml")


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_bundled_profile_bound_entries_are_for_tests_that_ask_a_dispute(runtime: str) -> None:
    # An entry may be strict-only because runc-compatible accepts the behaviour: then its test
    # must be one that asks the dispute fixture, or runc-compatible would change nothing there.
    suite = Path(__file__).resolve().parent.parent / "conformance"
    entries, _ = load(None, runtime)
    bound = [e for e in entries if e.profiles is not None]
    assert bound, f"{runtime}.toml has no profile-bound entry"
    for entry in bound:
        assert entry.profiles == frozenset({"strict"}), entry.test
        module, name = entry.test.split("::", 1)
        source = (suite / module).read_text()
        function = name.split("[", 1)[0]
        body = source.split(f"def {function}(", 1)[1].split("\ndef ", 1)[0]
        assert "dispute" in body, f"{entry.test} does not ask a dispute"
