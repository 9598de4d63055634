"""The process-attribute strategies generate what they promise (no containers, no root)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.spec import (
    DEFAULT_PATH_ENV,
    SCHEMA_DIR_ENV,
    Spec,
    User,
    default_spec,
    find_schema_dir,
    validator,
)
from bulkhead.strategies import RESERVED_ENV_NAMES
from bulkhead.strategies import _process_attrs as attrs

SETTINGS = settings(max_examples=60, deadline=None)
needs_schema = pytest.mark.skipif(
    find_schema_dir() is None,
    reason=f"runtime-spec schemas not found: set {SCHEMA_DIR_ENV}=/path/to/runtime-spec/schema",
)

# What /proc/self/status says on this build host (every capability but CAP_SYS_RESOURCE).
STATUS = "Name:\tx\nCapInh:\t0\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"
STATUS += "CapBnd:\t000001fffeffffff\nCapAmb:\t0\n"


def assert_valid(spec: Spec) -> None:
    doc = spec.to_json_dict()
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator("config-schema.json").iter_errors(doc)
    ]
    assert errors == []
    assert Spec.from_json_dict(doc) == spec


def placed(**process: Any) -> Spec:
    spec = default_spec()
    assert spec.process is not None
    for name, value in process.items():
        setattr(spec.process, name, value)
    return spec


# --- capability tables --------------------------------------------------------------------------


def test_the_capability_table_matches_the_kernel_numbers() -> None:
    numbers = attrs.CAPABILITY_NUMBERS
    assert sorted(numbers.values()) == list(range(41))
    assert numbers["CAP_CHOWN"] == 0 and numbers["CAP_SYS_RESOURCE"] == 24
    assert numbers["CAP_AUDIT_WRITE"] == 29 and numbers["CAP_CHECKPOINT_RESTORE"] == 40


def test_masks_and_names_round_trip() -> None:
    # `runc spec`'s three defaults are 0x20000420 in /proc/self/status.
    runc = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert attrs.capability_mask(runc) == 0x20000420
    assert attrs.capability_names(0x20000420) == runc
    assert attrs.capability_names(1 << 63) == []  # bits the table does not know
    with pytest.raises(ValueError):
        attrs.capability_mask(["CAP_NOPE"])


def test_held_capabilities_reads_status_text() -> None:
    held = attrs.held_capabilities(STATUS)
    assert "CAP_SYS_RESOURCE" not in held and len(held) == 40
    narrower = STATUS.replace("CapBnd:\t000001fffeffffff", "CapBnd:\t0000000000000001")
    assert attrs.held_capabilities(narrower) == ("CAP_CHOWN",)
    with pytest.raises(ValueError):
        attrs.held_capabilities("Name:\tx\n")


# --- capability cases ---------------------------------------------------------------------------

HELD = attrs.held_capabilities(STATUS)


@SETTINGS
@given(attrs.capability_cases(HELD))
def test_capability_cases_survive_execve(case: attrs.CapabilityCase) -> None:
    c = case.capabilities
    sets = {name: set(getattr(c, name)) for name in attrs.CAPABILITY_SET_FIELDS}
    assert all(names <= set(HELD) for names in sets.values())
    assert "CAP_SYS_RESOURCE" not in set().union(*sets.values())
    assert sets["effective"] == sets["permitted"]
    assert sets["inheritable"] <= sets["bounding"]
    assert sets["ambient"] <= sets["permitted"] & sets["inheritable"]
    if case.uid != 0:
        # capabilities(7): without file capabilities only ambient survives for a non-root uid.
        assert sets["permitted"] == sets["ambient"]
    elif case.no_new_privileges:
        assert sets["permitted"] <= sets["bounding"]
    else:
        # Root gets P' = B | I, and I lies within B.
        assert sets["permitted"] == sets["bounding"]
    assert all(getattr(c, name) == sorted(getattr(c, name)) for name in sets)


def test_capability_cases_reach_every_shape() -> None:
    shapes: set[tuple[bool, bool, bool]] = set()

    @settings(max_examples=200, deadline=None)
    @given(attrs.capability_cases(HELD))
    def collect(case: attrs.CapabilityCase) -> None:
        shapes.add((case.uid == 0, case.no_new_privileges, bool(case.capabilities.ambient)))

    collect()
    assert len(shapes) == 8


def test_capability_cases_refuse_unknown_names() -> None:
    with pytest.raises(InvalidArgument):
        attrs.capability_cases(["CAP_NOPE"])


@SETTINGS
@given(attrs.capability_cases(()))
def test_capability_cases_work_with_nothing_held(case: attrs.CapabilityCase) -> None:
    assert all(not getattr(case.capabilities, n) for n in attrs.CAPABILITY_SET_FIELDS)


# --- identities, environments, oom_score_adj ----------------------------------------------------


@SETTINGS
@given(attrs.identities())
def test_identities_always_carry_a_umask(user: User) -> None:
    assert user.umask is not None and 0 <= user.umask <= 0o777
    assert user.additional_gids is None or (
        user.additional_gids and len(set(user.additional_gids)) == len(user.additional_gids)
    )


@SETTINGS
@given(attrs.environments())
def test_environments_set_path_and_home_and_never_the_canary(env: list[str]) -> None:
    names = [entry.partition("=")[0] for entry in env]
    assert env[0] == DEFAULT_PATH_ENV and env[1].startswith("HOME=/")
    assert len(set(names)) == len(names)
    assert attrs.ENV_CANARY not in names
    assert not set(names[2:]) & (RESERVED_ENV_NAMES | {"HOME"})


@SETTINGS
@given(attrs.oom_score_adjs(floor=-5))
def test_oom_score_adjs_stay_between_the_floor_and_1000(value: int) -> None:
    assert -5 <= value <= 1000


@SETTINGS
@given(attrs.oom_score_adjs())
def test_oom_score_adjs_default_to_this_process(value: int) -> None:
    assert attrs.current_oom_score_adj() <= value <= 1000


def test_oom_score_adjs_check_the_floor() -> None:
    with pytest.raises(InvalidArgument):
        attrs.oom_score_adjs(floor=-1001)


# --- everything drawn validates against the official schema -------------------------------------


@needs_schema
@SETTINGS
@given(st.data())
def test_generated_process_attributes_validate(data: st.DataObject) -> None:
    case = data.draw(attrs.capability_cases(HELD))
    user = data.draw(attrs.identities())
    spec = placed(
        user=user.model_copy(update={"uid": case.uid}),
        capabilities=case.capabilities,
        no_new_privileges=case.no_new_privileges,
        env=data.draw(attrs.environments()),
        oom_score_adj=data.draw(attrs.oom_score_adjs(floor=-1000)),
    )
    assert_valid(spec)
