"""linux.seccomp compiles through libseccomp before anything is made; bad profiles are refused.

Nothing is loaded into the kernel here: compiling a filter is pure userspace work.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.errors import SpecError, SyscallError

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
    assert seccomp._action("SCMP_ACT_ERRNO", None, "x", "errnoRet") == 0x00050000 | 1
    assert seccomp._action("SCMP_ACT_ERRNO", 38, "x", "errnoRet") == 0x00050000 | 38
    assert seccomp._action("SCMP_ACT_TRACE", 7, "x", "errnoRet") == 0x7FF00000 | 7
    assert seccomp._action("SCMP_ACT_ALLOW", None, "x", "errnoRet") == 0x7FFF0000
    assert seccomp._action("SCMP_ACT_NOTIFY", None, "x", "errnoRet") == 0x7FC00000


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"syscalls": [{"names": ["frobnicate"], "action": "SCMP_ACT_ALLOW"}]}, "unknown syscall"),
        ({"defaultAction": "SCMP_ACT_MAYBE"}, "unknown seccomp action"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "supported on rules only"),
        ({"syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_NOTIFY"}]},
         "needs a listenerPath"),
        ({"syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
         "errnoRet is set, but SCMP_ACT_KILL takes no errno"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
          "syscalls": [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO"}]},
         "defaultErrnoRet is set, but SCMP_ACT_ALLOW takes no errno"),
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


def test_a_notify_rule_makes_a_filter_with_a_listener() -> None:
    rules = [{"names": ["getpgid"], "action": "SCMP_ACT_NOTIFY"}]
    compiled = seccomp.compile_filter(
        profile(syscalls=rules, listenerPath="/run/agent.sock", listenerMetadata="m"),
        no_new_privileges=True,
    )
    assert (compiled.listener, compiled.metadata) == ("/run/agent.sock", "m")


def test_a_listener_path_without_a_notify_rule_is_ignored() -> None:
    # config-linux.md: "If the SCMP_ACT_NOTIFY action is not used this value is ignored."
    compiled = seccomp.compile_filter(profile(listenerPath="/nowhere.sock"), True)
    assert compiled.listener is None


def test_the_agent_gets_one_state_with_the_fd_and_then_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.bind(str(path))
    agent.listen(1)
    r, w = os.pipe()
    try:
        seccomp.send_to_listener(str(path), b'{"ociVersion": "1.3.0"}', r)
        conn, _ = agent.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            assert data == b'{"ociVersion": "1.3.0"}' and len(fds) == 1
            assert conn.recv(1) == b""  # closed after the one state
            os.write(w, b"x")
            assert os.read(fds[0], 1) == b"x"  # the very pipe crossed
            os.close(fds[0])
    finally:
        agent.close()
        os.close(r)
        os.close(w)


def test_an_absent_listener_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SyscallError, match="listenerPath"):
        seccomp.send_to_listener(str(tmp_path / "none.sock"), b"{}", 0)


def test_the_notify_fd_crosses_the_socket_pair() -> None:
    runtime_end, init_end = seccomp.notify_fd_channel()
    r, w = os.pipe()
    try:
        seccomp.send_notify_fd(init_end, r)
        got = seccomp.receive_notify_fd(runtime_end)
        assert os.path.sameopenfile(got, r)
        os.close(got)
    finally:
        for fd in (r, w, runtime_end, init_end):
            os.close(fd)


# --- real profiles repeat rules -------------------------------------------------------------
# podman's default profile allows socket() under two conditions that libseccomp folds into one
# on x86 (socketcall): such a profile must be taken, and a rule contradicting an earlier one
# still refused.


def socket_rule(action: str, *args: tuple[int, str, int], **extra: Any) -> dict[str, Any]:
    return {
        "names": ["socket"],
        "action": action,
        "args": [{"index": i, "op": op, "value": v} for i, op, v in args],
        **extra,
    }


def rules_profile(rules: list[dict[str, Any]], *archs: str) -> dict[str, Any]:
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
        rules_profile(PODMAN_SOCKET_RULES, "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        no_new_privileges=True,
    )


def test_a_rule_contradicting_an_earlier_one_is_refused() -> None:
    # On the native architecture alone, where libseccomp checks the arguments itself.
    rules = [
        socket_rule("SCMP_ACT_ALLOW", (0, "SCMP_CMP_NE", 16)),
        socket_rule("SCMP_ACT_ERRNO", (0, "SCMP_CMP_NE", 16), errnoRet=22),
    ]
    with pytest.raises(SpecError, match=r"syscalls\[1\]: libseccomp refused the rule for socket"):
        seccomp.compile_filter(rules_profile(rules), no_new_privileges=True)
