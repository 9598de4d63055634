"""The command line: parsing, one-line errors and exit codes, features and spec output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_runtime import jsonio
from reference_runtime.cli.args import FLAG, MULTI, VALUE, parse
from reference_runtime.cli.main import main
from reference_runtime.errors import UsageError
from reference_runtime.linux.signals import parse_signal

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "oci-runtime-spec" / "schema"


def test_options_in_every_spelling() -> None:
    spec = {"bundle": VALUE, "detach": FLAG, "env": MULTI}
    got = parse(["--bundle", "b", "-detach", "--env=A=1", "--env", "B=2", "id"], spec)
    assert got.value("bundle") == "b" and got.flag("detach")
    assert got.values("env") == ["A=1", "B=2"]
    assert got.positionals == ["id"]


def test_exec_style_parsing_stops_at_the_first_positional() -> None:
    got = parse(["--env", "A=1", "id", "sh", "-c", "x"], {"env": MULTI}, stop_at_positional=True)
    assert got.positionals == ["id", "sh", "-c", "x"]


def test_unknown_options_and_missing_values_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown option --nope"):
        parse(["--nope"], {})
    with pytest.raises(UsageError, match="needs a value"):
        parse(["--bundle"], {"bundle": VALUE})


@pytest.mark.parametrize(
    ("text", "number"),
    [("TERM", 15), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("USR1", 10), ("RTMIN+2", 36)],
)
def test_signals_by_name_or_number(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["NOPE", "0", "65", "SIG"])
def test_unknown_signals(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_signal(bad)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["state"], 2, "failed to state container: state needs a container id"),
        (["state", "nope"], 1, "failed to state container nope: container nope does not exist"),
        (["kill", "nope", "BOGUS"], 2, "failed to kill container nope: unknown signal"),
        (["frobnicate"], 2, "failed to run 'frobnicate': no such command"),
        (["--systemd-cgroup", "state", "x"], 1, "systemd cgroup driver is not supported"),
        (["create", "--bundle", "/nonexistent", "c1"], 1,
         "failed to create container c1: bundle /nonexistent: no such directory"),
        (["delete", "../x"], 1, "invalid container id"),
        (["--log-format", "xml", "state", "x"], 2, "use text or json"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_with_an_exit_code(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    assert main(["--root", str(tmp_path), *argv]) == code
    err = capfd.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


def test_errors_also_go_to_the_json_log(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    assert main(["--root", str(tmp_path), "--log", str(log), "--log-format", "json",
                 "state", "nope"]) == 1  # fmt: skip
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "does not exist" in entry["msg"]
    capfd.readouterr()


def _schema(name: str) -> Any:
    """A validator for an official schema, its ``$ref``s resolved among its siblings."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    if not (SCHEMAS / name).exists():
        pytest.skip(f"runtime-spec schemas not found at {SCHEMAS}")
    from referencing.jsonschema import DRAFT4

    resources = [
        (path.name, referencing.Resource.from_contents(json.loads(path.read_text()), DRAFT4))
        for path in SCHEMAS.glob("*.json")
    ]
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_features_validate_against_the_schema(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["features"]) == 0
    data = json.loads(capfd.readouterr().out)
    errors = list(_schema("features-schema.json").iter_errors(data))
    assert not errors, errors
    assert data["ociVersionMax"] == "1.3.0"
    seccomp = data["linux"]["seccomp"]
    if seccomp["enabled"]:  # with libseccomp: every action, the listener's too
        assert "SCMP_ACT_ERRNO" in seccomp["actions"] and "SCMP_ACT_NOTIFY" in seccomp["actions"]


def test_spec_writes_a_valid_config(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "--bundle", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "config.json").read_text())
    errors = list(_schema("config-schema.json").iter_errors(data))
    assert not errors, errors
    assert main(["spec", "--bundle", str(tmp_path)]) == 1  # never overwrites
    assert "already exists" in capfd.readouterr().err


def test_the_fast_json_matches_the_json_module() -> None:
    doc = {"a": [1, 2.5, True, None, 'é\n"x"'], "b": {"c": -(2**70)}}
    assert json.loads(jsonio.dumps(doc)) == doc
    assert jsonio.loads(json.dumps(doc)) == doc
    for bad in ("", "{", "[1,]", '{"a":1} x', "NaN"):
        with pytest.raises(jsonio.JSONError):
            jsonio.loads(bad)


def test_the_start_up_path_imports_nothing_heavy() -> None:
    """``run`` and ``create`` must not import what design.md §5 prices in milliseconds."""
    code = (
        "import sys; import reference_runtime.cli.create, reference_runtime.cli.run, "
        "reference_runtime.cli.state, reference_runtime.cli.kill, reference_runtime.cli.delete, "
        "reference_runtime.lifecycle.run, reference_runtime.lifecycle.exec;"
        "bad = {'re', 'json', 'enum', 'typing', 'argparse', 'subprocess', 'dataclasses',"
        " 'signal', 'inspect', 'pydantic'} & set(sys.modules); print(sorted(bad))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); "
         + code], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "[]"
