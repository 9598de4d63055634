"""linux.seccomp enforced, not merely accepted (config-linux.md "Seccomp"): every action as the
program sees it, the default action and its errno, argument comparisons, architectures,
flags, and the seccomp listener with the container process state it is sent ("The Container
Process State"), the test playing the seccomp agent.

The program is bulkhead-probe, which makes each system call itself (conformance/_seccomp.py):
what it prints is the kernel's answer to that call under the container's filter. Every rule
targets calls that neither the runtime (after loading the filter) nor busybox sh makes, and
every test has a call the rules leave alone as its control.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead.containers import ContainerFactory, Result, poll
from bulkhead.spec import Seccomp, Spec, Syscall, SyscallArg
from conformance._seccomp import (
    POOL,
    SIGSYS_STATUS,
    Agent,
    Connection,
    KernelLog,
    Seen,
    answer,
    calls_script,
    native_syscall_names,
    probe_args,
    receive_notification,
    skip_unless_flag_supported,
    syscall_number,
    with_seccomp,
)
from conformance._support import (
    assert_nothing_created,
    boot_seconds,
    container_process,
    expect_refusal,
    expect_success,
    sh,
    validate_against,
)

# errnos no call of the probe returns by itself, so a match is the filter's doing
EPROTO, EXDEV, ENOTUNIQ = errno.EPROTO, errno.EXDEV, errno.ENOTUNIQ


def rule(
    names: list[str],
    action: str,
    errno_ret: int | None = None,
    args: list[SyscallArg] | None = None,
) -> Syscall:
    return Syscall(names=names, action=action, errno_ret=errno_ret, args=args)


def profile(*rules: Syscall, default: str = "SCMP_ACT_ALLOW", **kw: object) -> Seccomp:
    return Seccomp(default_action=default, syscalls=list(rules) or None, **kw)


def run_calls(containers: ContainerFactory, seccomp: Seccomp | None, *calls: str) -> Seen:
    """Runs the probe's ``calls`` under sh in a container with ``seccomp``."""
    spec = containers.spec(sh(calls_script(*calls)))
    if seccomp is not None:
        spec = with_seccomp(spec, seccomp)
    return Seen.parse(containers.run(spec))


def all_but(*denied: str) -> list[str]:
    """Every syscall name of this architecture except ``denied`` (an allow-list)."""
    names = [n for n in native_syscall_names() if n not in denied]
    assert set(denied) <= set(native_syscall_names()), "the probe's calls are syscalls here"
    return names


# --- actions ------------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action", "runtime.create.5")
def test_errno_rules_return_their_errno(containers: ContainerFactory) -> None:
    seen = run_calls(
        containers,
        profile(rule(["getpgid"], "SCMP_ACT_ERRNO", EPROTO), rule(["umask"], "SCMP_ACT_ERRNO")),
        "getsid",
        "getpgid",
        "umask",
    )
    assert seen.status == 0 and seen.succeeded("getsid"), seen.raw
    # errnoRet is returned as given; without one the errno is EPERM (config-linux.md).
    assert (seen.errno_of("getpgid"), seen.errno_of("umask")) == (EPROTO, errno.EPERM), seen.raw


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
@pytest.mark.parametrize(
    "action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"]
)
def test_kill_actions_kill_the_caller_with_sigsys(
    containers: ContainerFactory, action: str
) -> None:
    seen = run_calls(containers, profile(rule(["getpgid"], action)), "getsid", "getpgid")
    # The calls before ran; the filtered one never returned: the probe died of SIGSYS
    # (seccomp(2): the kernel kills "as though by SIGSYS"), with no handler of its own run.
    assert seen.succeeded("getsid"), seen.raw
    assert seen.outcomes.get("getpgid") == "", seen.raw
    assert seen.status == SIGSYS_STATUS, f"expected death by SIGSYS (status 159): {seen.raw}"


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
@pytest.mark.parametrize(
    ("action", "whole_process"),
    [("SCMP_ACT_KILL", False), ("SCMP_ACT_KILL_THREAD", False), ("SCMP_ACT_KILL_PROCESS", True)],
)
def test_kill_thread_kills_the_thread_and_kill_process_the_process(
    containers: ContainerFactory, action: str, whole_process: bool
) -> None:
    # The probe makes the call in a second thread, then goes on in its first: seccomp(2)
    # SECCOMP_RET_KILL_THREAD ends only the caller (SCMP_ACT_KILL is KILL_THREAD in
    # libseccomp), SECCOMP_RET_KILL_PROCESS the whole process.
    seen = run_calls(containers, profile(rule(["getpgid"], action)), "thread/getpgid", "getsid")
    if whole_process:
        assert seen.status == SIGSYS_STATUS and "getsid" not in seen.outcomes, seen.raw
    else:
        assert seen.outcomes.get("thread/getpgid") == "killed", seen.raw
        assert seen.succeeded("getsid") and seen.status == 0, seen.raw


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
def test_trap_delivers_sigsys_to_the_caller(containers: ContainerFactory) -> None:
    seen = run_calls(containers, profile(rule(["getpgid"], "SCMP_ACT_TRAP")), "getpgid", "getsid")
    # SECCOMP_RET_TRAP: a SIGSYS with si_code SYS_SECCOMP the probe catches, and it goes on.
    assert seen.outcomes.get("getpgid") == "trapped", seen.raw
    assert seen.succeeded("getsid") and seen.status == 0, seen.raw


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
def test_trace_without_a_tracer_fails_the_call_with_enosys(
    containers: ContainerFactory,
) -> None:
    # seccomp(2) SECCOMP_RET_TRACE: "If there is no tracer present, the system call is not
    # executed and returns a failure status with errno set to ENOSYS."
    seen = run_calls(containers, profile(rule(["getpgid"], "SCMP_ACT_TRACE")), "getpgid", "getsid")
    assert seen.errno_of("getpgid") == errno.ENOSYS, seen.raw
    assert seen.succeeded("getsid") and seen.status == 0, seen.raw


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
def test_log_and_allow_rules_let_the_call_through(containers: ContainerFactory) -> None:
    # Under a default of ERRNO, a LOG or ALLOW rule is what lets the call run at all.
    names = all_but("getpgid", "umask", "getsid")
    seccomp = profile(
        rule(names, "SCMP_ACT_ALLOW"),
        rule(["getpgid"], "SCMP_ACT_LOG"),
        rule(["umask"], "SCMP_ACT_ALLOW"),
        default="SCMP_ACT_ERRNO",
        default_errno_ret=EXDEV,
    )
    seen = run_calls(containers, seccomp, "getpgid", "umask", "getsid")
    assert seen.succeeded("getpgid") and seen.succeeded("umask"), seen.raw
    assert seen.errno_of("getsid") == EXDEV, f"getsid matched no rule: {seen.raw}"


# --- the default action ------------------------------------------------------------------------


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-default-action", "runtime.create.5")
@pytest.mark.parametrize("errno_ret", [None, ENOTUNIQ])
def test_calls_no_rule_names_get_the_default_action(
    containers: ContainerFactory, errno_ret: int | None
) -> None:
    seccomp = profile(
        rule(all_but("getpgid", "umask"), "SCMP_ACT_ALLOW"),
        default="SCMP_ACT_ERRNO",
        default_errno_ret=errno_ret,
    )
    seen = run_calls(containers, seccomp, "getsid", "getpgid", "umask")
    expected = errno.EPERM if errno_ret is None else errno_ret  # defaultErrnoRet's default
    assert seen.succeeded("getsid") and seen.status == 0, seen.raw
    assert (seen.errno_of("getpgid"), seen.errno_of("umask")) == (expected, expected), seen.raw


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-default-action")
def test_a_trap_default_traps_the_calls_no_rule_allows(containers: ContainerFactory) -> None:
    seccomp = profile(rule(all_but("getpgid"), "SCMP_ACT_ALLOW"), default="SCMP_ACT_TRAP")
    seen = run_calls(containers, seccomp, "getpgid", "getsid")
    assert seen.outcomes.get("getpgid") == "trapped", seen.raw
    assert seen.succeeded("getsid") and seen.status == 0, seen.raw


# --- errnoRet where the action takes none ------------------------------------------------------


def check_create(containers: ContainerFactory, seccomp: Seccomp, *, accepted: bool) -> None:
    """``create`` with ``seccomp`` succeeds (``accepted``) or is refused leaving nothing."""
    spec = with_seccomp(containers.spec(sh("true")), seccomp)
    with containers.bundle(spec) as (cid, bundle):
        started = boot_seconds()
        call = containers.client.create(cid, bundle.path, check=False)
        what = f"create with seccomp {seccomp.model_dump(by_alias=True, exclude_none=True)}"
        if accepted:
            expect_success(call, what)
            return
        expect_refusal(call, what)
        assert_nothing_created(containers, cid, bundle=bundle, since=started)


@pytest.mark.spec("config-linux.seccomp.2")
def test_default_errno_ret_with_a_default_action_taking_none_is_refused(
    containers: ContainerFactory,
) -> None:
    allowed = rule(all_but("getpgid"), "SCMP_ACT_ALLOW")
    # Control: defaultErrnoRet with a default action that takes an errno.
    check_create(
        containers, profile(allowed, default="SCMP_ACT_ERRNO", default_errno_ret=1), accepted=True
    )
    check_create(
        containers,
        profile(rule(["getpgid"], "SCMP_ACT_ERRNO"), default_errno_ret=1),
        accepted=False,
    )


@pytest.mark.spec("config-linux.seccomp.13")
@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"])
def test_errno_ret_on_a_rule_whose_action_takes_none_is_refused(
    containers: ContainerFactory, action: str
) -> None:
    # Control: errnoRet on a rule whose action takes one.
    check_create(containers, profile(rule(["getpgid"], "SCMP_ACT_ERRNO", 1)), accepted=True)
    check_create(containers, profile(rule(["getpgid"], action, 1)), accepted=False)


# --- the seccomp listener: the test is the agent ----------------------------------------------


def agent_path(containers: ContainerFactory, tag: str) -> Path:
    containers.base_dir.mkdir(parents=True, exist_ok=True)
    return containers.base_dir / f"{containers.id_prefix}-{tag}.sock"


def notify_spec(
    containers: ContainerFactory, listener: Path, *calls: str, metadata: str | None = None
) -> Spec:
    """The probe as pid 1, making ``calls``; getpgid notifies the agent at ``listener``."""
    seccomp = profile(
        rule(["getpgid"], "SCMP_ACT_NOTIFY"),
        listener_path=str(listener),
        listener_metadata=metadata,
    )
    return with_seccomp(containers.spec(probe_args(*calls)), seccomp)


def one_state(conn: Connection) -> dict[str, Any]:
    """The connection's bytes as one JSON document, read to end of file."""
    assert conn.error is None and conn.eof, f"the runtime did not close the connection: {conn}"
    doc, end = json.JSONDecoder().raw_decode(conn.data.decode())
    assert not conn.data.decode()[end:].strip(), (
        f"more than one container process state on one connection: {conn.data!r}"
    )
    assert isinstance(doc, dict), f"the container process state is not an object: {doc!r}"
    return doc


@pytest.mark.spec(
    "config-linux.seccomp.3",
    "config-linux.seccomp.4",
    "config-linux.seccomp.6",
    "config-linux.seccomp.8",
    "config-linux.the-container-process-state.1",
    "config-linux.the-container-process-state.2",
    "config-linux.the-container-process-state.4",
    "config-linux.the-container-process-state.5",
    "config-linux.the-container-process-state.6",
    "config-linux.the-container-process-state.7",
)
def test_the_agent_gets_the_state_and_a_notify_fd_that_works(
    containers: ContainerFactory,
) -> None:
    path = agent_path(containers, "agent")
    with Agent(path) as agent:
        spec = notify_spec(containers, path, "getsid", "getpgid", metadata="MKNOD=/dev/null")
        with containers.container(spec) as ctr:
            # The spec leaves open when the filter is loaded (during create or at start): the
            # program, started, waits in its first notified call until the agent answers.
            ctr.start()
            conns = agent.finished(1)
            # The runtime connected to our AF_UNIX SOCK_STREAM socket once, sent one JSON
            # document and closed the connection (the agent read it to end of file).
            assert len(conns) == 1, f"expected one connection, got {conns}"
            doc = one_state(conns[0])
            # SCM_RIGHTS carried one fd, with the first recvmsg and with no later one.
            carrying = [i for i, (_, fds) in enumerate(conns[0].chunks) if fds]
            assert carrying == [0] and len(conns[0].fds) == 1, (
                f"fds per recvmsg: {[len(f) for _, f in conns[0].chunks]}"
            )
            fd = conns[0].fds[0]
            assert doc.get("fds") == ["seccompFd"], doc
            assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify", (
                "the fd the runtime sent is no seccomp notify fd"
            )
            assert isinstance(doc.get("ociVersion"), str), doc
            assert doc.get("metadata") == "MKNOD=/dev/null", doc
            init = container_process(ctr)
            assert doc.get("pid") == init.pid, f"state pid {doc.get('pid')}, init {init.pid}"
            state = doc.get("state")
            assert isinstance(state, dict), doc
            validate_against("state-schema.json", state)
            assert (state["id"], state["bundle"], state["status"]) == (
                ctr.id,
                str(ctr.bundle.path),
                "creating",
            ), state
            # The fd works: the program's notified call waits for our answer, and gets it.
            note = receive_notification(fd)
            assert (note.pid, note.nr) == (init.pid, syscall_number("getpgid")), note
            answer(fd, note, value=4242)
            ctr.wait_for("stopped")
            seen = Seen.parse(Result(0, (ctr.bundle.path / "stdout").read_text(), ""))
            assert seen.succeeded("getsid") and seen.returned("getpgid") == 4242, seen.raw


@pytest.mark.spec("config-linux.seccomp.5", "config-linux.seccomp.4")
def test_each_container_gets_a_connection_of_its_own(containers: ContainerFactory) -> None:
    path = agent_path(containers, "two")
    with Agent(path) as agent:
        spec = notify_spec(containers, path, "getpgid")
        with (
            containers.container(spec, start=True) as first,
            containers.container(spec, start=True) as second,
        ):
            conns = agent.finished(2)
            assert len(conns) == 2, f"expected two connections for two containers: {conns}"
            ids = [one_state(conn)["state"]["id"] for conn in conns]
            assert sorted(ids) == sorted([first.id, second.id]), ids
            assert [len(conn.fds) for conn in conns] == [1, 1], conns


@pytest.mark.spec("config-linux.seccomp.7")
def test_create_fails_when_the_listener_cannot_be_reached(containers: ContainerFactory) -> None:
    path = agent_path(containers, "absent")
    spec = notify_spec(containers, path, "getsid")
    with containers.bundle(spec) as (cid, bundle):
        started = boot_seconds()
        call = containers.client.create(cid, bundle.path, check=False)
        expect_refusal(call, f"create with listenerPath {path} that nothing listens on")
        assert_nothing_created(containers, cid, bundle=bundle, since=started)
    # Control: the same config is created, and sends its state, once an agent listens there.
    with Agent(path) as agent, containers.container(spec, create=False) as ctr:
        expect_success(ctr.create(check=False), "create with an agent listening")
        ctr.start()
        conns = agent.finished(1)
        assert len(conns) == 1 and one_state(conns[0])["state"]["id"] == ctr.id, conns


# --- argument comparisons -----------------------------------------------------------------------

# (op, value, valueTwo) and what the rule then matches; config-linux.md and libseccomp's
# seccomp_rule_add(3): MASKED_EQ matches (arg & value) == valueTwo.
MATCHES: dict[str, Any] = {
    "SCMP_CMP_NE": lambda a, v, v2: a != v,
    "SCMP_CMP_LT": lambda a, v, v2: a < v,
    "SCMP_CMP_LE": lambda a, v, v2: a <= v,
    "SCMP_CMP_EQ": lambda a, v, v2: a == v,
    "SCMP_CMP_GE": lambda a, v, v2: a >= v,
    "SCMP_CMP_GT": lambda a, v, v2: a > v,
    "SCMP_CMP_MASKED_EQ": lambda a, v, v2: a & v == v2,
}


def check_comparison(
    containers: ContainerFactory, op: str, value: int, value_two: int | None, probes: list[int]
) -> None:
    """umask(arg) -- any argument is harmless -- fails with EPROTO exactly where arg0
    compares as the rule says."""
    cond = SyscallArg(index=0, value=value, value_two=value_two, op=op)
    seccomp = profile(rule(["umask"], "SCMP_ACT_ERRNO", EPROTO, [cond]))
    calls = [f"umask:{arg}" for arg in probes]
    seen = run_calls(containers, seccomp, "getsid", *calls)
    assert seen.status == 0 and seen.succeeded("getsid"), seen.raw
    denied = {arg for arg, call in zip(probes, calls, strict=True) if seen.errno_of(call) == EPROTO}
    allowed = {arg for arg, call in zip(probes, calls, strict=True) if seen.succeeded(call)}
    expected = {arg for arg in probes if MATCHES[op](arg, value, value_two or 0)}
    assert (denied, allowed) == (expected, set(probes) - expected), (
        f"{op} {value} {value_two}: {seen.raw}"
    )


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-args")
@pytest.mark.parametrize("op", sorted(MATCHES))
def test_argument_comparisons_narrow_the_rule(containers: ContainerFactory, op: str) -> None:
    if op == "SCMP_CMP_MASKED_EQ":
        check_comparison(containers, op, 0o70, 0o50, [0o50, 0o57, 0o40, 0o150, 0o10, 5])
    else:
        check_comparison(containers, op, 5, None, [0, 4, 5, 6, 0o777])


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-args")
@given(
    op=st.sampled_from(sorted(MATCHES)),
    value=st.integers(0, 0o777),
    value_two=st.integers(0, 0o777),
    probes=st.lists(st.integers(0, 0o777), min_size=1, max_size=6, unique=True),
)
def test_generated_argument_comparisons(
    containers: ContainerFactory, op: str, value: int, value_two: int, probes: list[int]
) -> None:
    # The boundaries matter most: probe the value itself and its neighbours too.
    probes = sorted({*probes, value, max(value - 1, 0), value + 1})
    if op != "SCMP_CMP_MASKED_EQ":
        check_comparison(containers, op, value, None, probes)
        return
    # libseccomp masks the datum too (bits outside the mask never match on their own): only a
    # valueTwo within the mask has one meaning. Probe an argument that matches, as well.
    datum = value & value_two
    probes = sorted({*probes, datum | (~value & 0o777 & probes[0])})
    check_comparison(containers, op, value, datum, probes)


# --- generated rule sets ------------------------------------------------------------------------

ERRNOS = sorted(n for n in errno.errorcode if 0 < n < 134)


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
@given(denied=st.dictionaries(st.sampled_from(POOL), st.sampled_from(ERRNOS), max_size=len(POOL)))
def test_generated_errno_rules_deny_exactly_their_calls(
    containers: ContainerFactory, denied: dict[str, int]
) -> None:
    # One rule per errno (a rule's names share its errnoRet), in a drawn order.
    by_errno: dict[int, list[str]] = {}
    for name, number in denied.items():
        by_errno.setdefault(number, []).append(name)
    rules = [rule(names, "SCMP_ACT_ERRNO", number) for number, names in by_errno.items()]
    seen = run_calls(containers, profile(*rules), *POOL)
    assert seen.status == 0, seen.raw
    assert {c: seen.errno_of(c) for c in POOL if c in denied} == denied, seen.raw
    assert [c for c in POOL if c not in denied and not seen.succeeded(c)] == [], seen.raw


# --- architectures ------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-architectures")
def test_listed_architectures_are_filtered_too(containers: ContainerFactory) -> None:
    if platform.machine() != "x86_64":
        pytest.skip(
            f"the probe makes 32-bit calls (int $0x80) on x86_64 only, not on {platform.machine()}"
        )
    plain = run_calls(containers, None, "i386/getsid")
    if not plain.succeeded("i386/getsid"):
        pytest.skip(f"this kernel runs no i386 system calls (ia32_emulation off): {plain.raw}")
    seccomp = profile(
        rule(["getpgid"], "SCMP_ACT_ERRNO", EPROTO),
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    )
    seen = run_calls(containers, seccomp, "getpgid", "i386/getpgid", "i386/getsid")
    # The rule holds for the i386 ABI as for the native one (seccomp sees AUDIT_ARCH_I386),
    # and i386 calls the rule leaves alone run: the filter knows the architecture.
    assert (seen.errno_of("getpgid"), seen.errno_of("i386/getpgid")) == (EPROTO, EPROTO), seen.raw
    assert seen.succeeded("i386/getsid") and seen.status == 0, seen.raw


# --- flags --------------------------------------------------------------------------------------


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-flags")
def test_spec_allow_leaves_speculative_store_bypass_unmitigated(
    containers: ContainerFactory,
) -> None:
    skip_unless_flag_supported(containers.client, "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
    mode = Path("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass")
    text = mode.read_text().strip() if mode.exists() else "absent"
    if "seccomp" not in text:
        pytest.skip(
            f"seccomp does not force the SSB mitigation on this host ({mode}: {text}), "
            "so SECCOMP_FILTER_FLAG_SPEC_ALLOW changes nothing to see"
        )
    script = "grep Speculation_Store_Bypass /proc/self/status"
    seen = {}
    for flags in (None, ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]):
        seccomp = profile(rule(["getpgid"], "SCMP_ACT_ERRNO"), flags=flags)
        result = containers.run(with_seccomp(containers.spec(sh(script)), seccomp))
        seen[bool(flags)] = result.stdout
    assert "force mitigated" in seen[False], f"control: without the flag: {seen[False]!r}"
    assert "force mitigated" not in seen[True], f"with SPEC_ALLOW: {seen[True]!r}"


def audit_records(
    containers: ContainerFactory, seccomp: Seccomp, call: str, expect: bool
) -> list[str]:
    """The kernel's seccomp audit records of the probe making ``call`` as pid 1 (its host pid
    is known before it starts, which tells its records from any other's). Waits up to 2 s for
    one when ``expect``, 0.5 s otherwise."""
    try:
        log = KernelLog()
    except OSError as exc:
        pytest.skip(f"cannot read the kernel log /dev/kmsg: {exc}")
    try:
        with containers.container(with_seccomp(containers.spec(probe_args(call)), seccomp)) as ctr:
            pid = ctr.pid
            ctr.start()
            ctr.wait_for("stopped")
            try:
                return poll(
                    lambda: log.seccomp_records(pid) or None,
                    timeout=2.0 if expect else 0.5,
                    what="a seccomp audit record",
                )
            except TimeoutError:
                return []
    finally:
        log.close()


def logged_with_retries(containers: ContainerFactory, seccomp: Seccomp, call: str) -> list[str]:
    """The kernel log is rate-limited (printk_ratelimit: 10 records per 5 s, and other tests'
    KILL actions are logged too), so an absent record is retried after the window passed."""
    for attempt in range(3):
        if attempt:
            time.sleep(5.5)  # the rate limit's interval: not a readiness wait
        records = audit_records(containers, seccomp, call, expect=True)
        if records:
            return records
    return []


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-flags")
def test_the_log_flag_logs_the_actions_of_the_filter(containers: ContainerFactory) -> None:
    # seccomp(2) SECCOMP_FILTER_FLAG_LOG: actions other than ALLOW are logged (those listed in
    # /proc/sys/kernel/seccomp/actions_logged); without the flag an ERRNO is not.
    skip_unless_flag_supported(containers.client, "SECCOMP_FILTER_FLAG_LOG")
    logged = Path("/proc/sys/kernel/seccomp/actions_logged").read_text().split()
    if "errno" not in logged:
        pytest.skip(f"this host does not log seccomp errno actions (actions_logged: {logged})")
    errno_rule = rule(["getpgid"], "SCMP_ACT_ERRNO", EPROTO)
    unflagged = audit_records(containers, profile(errno_rule), "getpgid", expect=False)
    flagged = logged_with_retries(
        containers, profile(errno_rule, flags=["SECCOMP_FILTER_FLAG_LOG"]), "getpgid"
    )
    # The record names the call and the action (SECCOMP_RET_ERRNO, without its data).
    number = syscall_number("getpgid")
    assert any(f" syscall={number} " in r and "code=0x50000" in r for r in flagged), (
        f"no audit record of the errno action with the flag: {flagged}"
    )
    assert unflagged == [], f"records without the flag: {unflagged}"


@pytest.mark.spec("config-linux.seccomp.apply-seccomp-syscall-action")
def test_a_log_rule_logs_the_call_and_lets_it_run(containers: ContainerFactory) -> None:
    logged = Path("/proc/sys/kernel/seccomp/actions_logged").read_text().split()
    if "log" not in logged:
        pytest.skip(f"this host does not log SECCOMP_RET_LOG (actions_logged: {logged})")
    records = logged_with_retries(containers, profile(rule(["getpgid"], "SCMP_ACT_LOG")), "getpgid")
    number = syscall_number("getpgid")
    assert any(f" syscall={number} " in r and "code=0x7ffc0000" in r for r in records), records
