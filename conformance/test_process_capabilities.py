"""The container process's capability sets and no_new_privs (config.md: Linux process),
read from its own /proc/$$/status: CapInh, CapPrm, CapEff, CapBnd and CapAmb, NoNewPrivs.

Only sets the kernel keeps across the runtime's final execve(2) can be "exactly as
configured" (see bulkhead.strategies._process_attrs.capability_cases), and only capabilities
this process holds can be granted at all: this host has no CAP_SYS_RESOURCE (design.md §5).
"""

from __future__ import annotations

import pytest
from hypothesis import given

from bulkhead.containers import ContainerFactory
from bulkhead.spec import RUNC_DEFAULT_CAPABILITIES, Capabilities, User
from bulkhead.strategies import _process_attrs as attrs
from conformance._process_probe import SNAPSHOT, Snapshot
from conformance._support import sh

ALL_SETS = (
    "config.linux-process.apply-capabilities-bounding",
    "config.linux-process.apply-capabilities-effective",
    "config.linux-process.apply-capabilities-inheritable",
    "config.linux-process.apply-capabilities-permitted",
    "config.linux-process.apply-capabilities-ambient",
)


def check_case(containers: ContainerFactory, case: attrs.CapabilityCase) -> None:
    spec = containers.spec(sh(SNAPSHOT))
    assert spec.process is not None
    spec.process.user = User(uid=case.uid, gid=case.uid)
    spec.process.capabilities = case.capabilities
    spec.process.no_new_privileges = case.no_new_privileges
    status = Snapshot.parse(containers.run(spec)).status()
    seen = {
        name: attrs.capability_names(int(status[field], 16))
        for name, field in attrs.CAPABILITY_SET_FIELDS.items()
    }
    wanted = {
        name: sorted(getattr(case.capabilities, name) or []) for name in attrs.CAPABILITY_SET_FIELDS
    }
    assert seen == wanted
    assert status["NoNewPrivs"] == ("1" if case.no_new_privileges else "0")


@pytest.mark.spec(*ALL_SETS, "config.linux-process.apply-no-new-privileges")
@given(case=attrs.capability_cases())
def test_the_five_capability_sets_are_exactly_as_configured(
    containers: ContainerFactory, case: attrs.CapabilityCase
) -> None:
    check_case(containers, case)


def _case(uid: int, nnp: bool, **sets: tuple[str, ...]) -> attrs.CapabilityCase:
    return attrs.CapabilityCase(
        uid=uid,
        no_new_privileges=nnp,
        capabilities=Capabilities(**{name: list(names) for name, names in sets.items()}),
    )


_RUNC = RUNC_DEFAULT_CAPABILITIES
_KILL_CHOWN = ("CAP_CHOWN", "CAP_KILL")


@pytest.mark.spec(*ALL_SETS, "config.linux-process.apply-no-new-privileges")
@pytest.mark.parametrize(
    "case",
    [
        # `runc spec`'s three, with empty inheritable and ambient (CVE-2022-29162).
        _case(0, True, bounding=_RUNC, effective=_RUNC, permitted=_RUNC),
        # Nothing at all: a runtime that grants its defaults anyway is caught.
        _case(0, True, bounding=(), effective=(), permitted=(), inheritable=(), ambient=()),
        # Permitted narrower than bounding, held only because noNewPrivileges stops execve
        # from raising it to the bounding set (capabilities(7)).
        _case(0, True, bounding=_KILL_CHOWN, effective=("CAP_KILL",), permitted=("CAP_KILL",)),
        # An unprivileged user keeps capabilities across execve only through ambient.
        _case(
            1000,
            False,
            bounding=_KILL_CHOWN,
            inheritable=_KILL_CHOWN,
            permitted=("CAP_KILL",),
            effective=("CAP_KILL",),
            ambient=("CAP_KILL",),
        ),
        # Without ambient an unprivileged process ends with nothing permitted or effective.
        _case(1000, False, bounding=_KILL_CHOWN, permitted=(), effective=()),
    ],
    ids=["runc-defaults", "none", "root-narrow-permitted", "ambient", "unprivileged-none"],
)
def test_chosen_capability_sets_are_exactly_as_configured(
    containers: ContainerFactory, case: attrs.CapabilityCase
) -> None:
    check_case(containers, case)


@pytest.mark.spec("config.linux-process.apply-no-new-privileges")
@pytest.mark.parametrize("nnp", [True, False], ids=["set", "unset"])
def test_no_new_privileges_is_applied(containers: ContainerFactory, nnp: bool) -> None:
    # Both ways, so neither a runtime that always sets no_new_privs nor one that never does
    # passes.
    spec = containers.spec(sh(SNAPSHOT))
    assert spec.process is not None
    spec.process.no_new_privileges = nnp
    status = Snapshot.parse(containers.run(spec)).status()
    assert status["NoNewPrivs"] == ("1" if nnp else "0")
