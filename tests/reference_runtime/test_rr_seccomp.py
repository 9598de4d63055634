"""linux.seccomp compiles through libseccomp before anything is made; bad profiles are refused.

Nothing is loaded into the kernel here: compiling a filter is pure userspace work.
"""

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


def profile(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["read", "write", "execve"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},  # errnoRet defaults to EPERM
        ],
    }  # fmt: skip
    base.update(overrides)
    return base


def test_a_docker_like_profile_compiles() -> None:
    compiled = seccomp.compile_filter(profile(), no_new_privileges=True)
    assert compiled.ctx


def test_action_values_carry_their_errno() -> None:
    assert seccomp._action("SCMP_ACT_ERRNO", None, "x") == 0x00050000 | 1
    assert seccomp._action("SCMP_ACT_ERRNO", 38, "x") == 0x00050000 | 38
    assert seccomp._action("SCMP_ACT_ALLOW", None, "x") == 0x7FFF0000


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"syscalls": [{"names": ["frobnicate"], "action": "SCMP_ACT_ALLOW"}]}, "unknown syscall"),
        ({"defaultAction": "SCMP_ACT_MAYBE"}, "unknown seccomp action"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "not supported yet"),
        ({"listenerPath": "/run/x.sock"}, "listeners are not supported"),
        ({"architectures": ["SCMP_ARCH_VAX"]}, "unknown architecture"),
        ({"flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, "unsupported flag"),
        ({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]},
         "unknown operator"),
    ],
)  # fmt: skip
def test_bad_profiles_are_refused(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        seccomp.compile_filter(profile(**overrides), no_new_privileges=True)
