"""Real profiles repeat rules: podman's default one allows socket() under two conditions that
libseccomp folds into one on x86 (socketcall). The reference runtime must take such a profile,
and still refuse a rule that contradicts an earlier one."""

from __future__ import annotations

from typing import Any

import pytest

from reference_runtime.errors import SpecError

seccomp = pytest.importorskip("reference_runtime.linux.seccomp")


@pytest.fixture(autouse=True)
def _needs_libseccomp() -> None:
    try:
        seccomp._library()
    except SpecError as exc:
        pytest.skip(str(exc))


def socket_rule(action: str, *args: tuple[int, str, int], **extra: Any) -> dict[str, Any]:
    return {
        "names": ["socket"],
        "action": action,
        "args": [{"index": i, "op": op, "value": v} for i, op, v in args],
        **extra,
    }


def profile(rules: list[dict[str, Any]], *archs: str) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": list(archs), "syscalls": rules}


# The shape of podman 4.3's default profile for socket() (AF_NETLINK 16, NETLINK_AUDIT 9).
PODMAN_SOCKET_RULES = [
    socket_rule("SCMP_ACT_ERRNO", (0, "SCMP_CMP_EQ", 16), (2, "SCMP_CMP_EQ", 9), errnoRet=22),
    socket_rule("SCMP_ACT_ALLOW", (2, "SCMP_CMP_NE", 9)),
    socket_rule("SCMP_ACT_ALLOW", (0, "SCMP_CMP_NE", 16)),
    socket_rule("SCMP_ACT_ALLOW", (2, "SCMP_CMP_NE", 9)),
]


def test_rules_libseccomp_folds_into_one_are_accepted() -> None:
    assert seccomp.compile_filter(
        profile(PODMAN_SOCKET_RULES, "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        no_new_privileges=True,
    )


def test_a_rule_contradicting_an_earlier_one_is_refused() -> None:
    # On the native architecture alone, where libseccomp checks the arguments itself.
    rules = [
        socket_rule("SCMP_ACT_ALLOW", (0, "SCMP_CMP_NE", 16)),
        socket_rule("SCMP_ACT_ERRNO", (0, "SCMP_CMP_NE", 16), errnoRet=22),
    ]
    with pytest.raises(SpecError, match=r"syscalls\[1\]: libseccomp refused the rule for socket"):
        seccomp.compile_filter(profile(rules), no_new_privileges=True)
