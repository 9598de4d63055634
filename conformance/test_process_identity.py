"""Who the container process is: uid, gid, supplementary groups and umask (config.md: POSIX
process user), read from the container process's own /proc/$$/status."""

from __future__ import annotations

import pytest
from hypothesis import given

from bulkhead.containers import ContainerFactory
from bulkhead.spec import User
from bulkhead.strategies import _process_attrs as attrs
from conformance._process_probe import SNAPSHOT, Snapshot
from conformance._support import sh


def check_identity(containers: ContainerFactory, user: User) -> None:
    spec = containers.spec(sh(SNAPSHOT))
    assert spec.process is not None
    spec.process.user = user
    seen = Snapshot.parse(containers.run(spec))
    # Real, effective, saved and filesystem ids: all four are the configured one.
    assert seen.ids("Uid") == [user.uid] * 4
    assert seen.ids("Gid") == [user.gid] * 4
    assert seen.ids("Groups") == sorted(set(user.additional_gids or []))
    if user.umask is not None:
        assert int(seen.status()["Umask"], 8) == user.umask


@pytest.mark.spec(
    "config.posix-platform-user.apply-user-uid-gid",
    "config.posix-platform-user.apply-additional-gids",
    "config.posix-platform-user.apply-umask",
)
@given(user=attrs.identities())
def test_the_process_has_the_configured_identity(containers: ContainerFactory, user: User) -> None:
    check_identity(containers, user)


@pytest.mark.spec(
    "config.posix-platform-user.apply-user-uid-gid",
    "config.posix-platform-user.apply-additional-gids",
    "config.posix-platform-user.apply-umask",
)
@pytest.mark.parametrize(
    "user",
    [
        # Nothing here equals what a runtime that ignores process.user would leave (root,
        # no groups, umask 0022), so each field is shown to be applied.
        User(uid=1234, gid=5678, additional_gids=[7, 3, 65534], umask=0o077),
        # uid and gid apart from the groups: a runtime must not fold the gid into Groups.
        User(uid=0, gid=4321, additional_gids=[11], umask=0o000),
    ],
    ids=["unprivileged", "root-with-other-gid"],
)
def test_a_chosen_identity_is_applied(containers: ContainerFactory, user: User) -> None:
    check_identity(containers, user)
