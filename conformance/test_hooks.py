"""Hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle" steps 3 to 13, v1.3.0).

Every hook a test configures is a recording script (conformance/_hooks.py): it leaves its argv,
environment, namespaces and the state it read on stdin in the test's own directory, and appends
its name to one ``order`` file that the user program (through a bind of that directory at
/bulkhead-hooks) writes to as well. What ran, when, where and with what is read from those files
and from the host's /proc, never from the runtime's answers. A kind's phase is seen by reading
the order file between the verbs: what is there when ``create``, ``start`` or ``delete``
returns ran before it returned.

Order, state, namespaces, args and env are all observed on one container that runs four hooks
of every kind through its whole lifecycle (``observed``, once per session and worker); each test
then judges one fact of it. Failures and timeouts need containers of their own, and each
refusal there sits next to a control in the same test: the same layout with a hook that
succeeds goes through, so a runtime that refuses everything, or runs no hook at all, fails them.

When poststart hooks run and what their failure does are disputed (runc runs them during create):
those tests find out which way the runtime went, check it on the host, and ask the ``dispute``
fixture whether the --spec-profile accepts it (bulkhead.disputes, docs/profiles.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bulkhead.containers import ContainerFactory, poll
from bulkhead.disputes import Ask
from bulkhead.hostview import cgroup_dirs, is_alive, nspid, process_ref
from bulkhead.spec import DEFAULT_PATH_ENV, Hook
from conformance._hooks import (
    CREATE_PHASE,
    INSIDE,
    KINDS,
    MAX_SLEEP,
    NS_TYPES,
    PATH_IN_CONTAINER,
    PROGRAM,
    RUNS_IN_CONTAINER,
    HookDir,
    Hooked,
    Kind,
    hooked,
    host_namespaces,
    process_namespaces,
    program,
)
from conformance._support import WAIT_FOREVER, refused, validate_against, wait_ready

# The namespaces the default config gives the container (the rest it shares with the host).
OWN_NAMESPACES = ("mnt", "pid", "net", "uts", "ipc")
# How long a container whose hook failed may take to be stopped by the runtime.
STOP_WITHIN = 5.0
# How long after a failed verb the poststop hooks may take to run (they are part of it).
POSTSTOP_WITHIN = 2.0
# argv[0] ends in /sh: inside the container /bin/sh is busybox, which picks sh by that name.
ARGV = ("/bulkhead/argv0/sh", "two words", "", "--flag=x", "*")
HOOK_ENV = ("BULKHEAD_HOOK_ENV=configured", "WITH_SPACE=a b", "EMPTY=")
RUNTIME_CANARY = "BULKHEAD_RUNTIME_CANARY"
PROCESS_CANARY = "BULKHEAD_PROCESS_CANARY=from-process.env"


def _listed(kind: Kind) -> list[str]:
    """The hooks of ``kind`` in the shared container, in the order the config lists them."""
    return [f"{kind}-0", f"{kind}-1", f"{kind}-args", f"{kind}-env"]


def _layout(d: HookDir) -> Iterator[tuple[Kind, Hook]]:
    for kind in KINDS:
        yield kind, d.hook(kind, f"{kind}-0")
        yield kind, d.hook(kind, f"{kind}-1")
        yield kind, d.hook(kind, f"{kind}-args", argv=ARGV)
        # The last startContainer hook takes a while: a runtime that runs poststart without
        # waiting for the user program to be executed (a race otherwise) is then always seen.
        slow = 0.5 if kind == "startContainer" else None
        yield kind, d.hook(kind, f"{kind}-env", env=HOOK_ENV, sleep=slow)


@dataclass(frozen=True)
class Observed:
    """One container's whole lifecycle with four recording hooks of every kind."""

    cid: str
    bundle: Path
    records: HookDir  # a copy of the hook directory, kept after the bundle is gone
    pid: int
    pid_in_its_namespace: int
    init_ns: dict[str, str]
    host_ns: dict[str, str]
    runtime_wrapped: bool  # the runtime runs in a private mount namespace of the suite's
    program_args: list[str]
    hook_args: dict[str, list[str]]
    # the order file when each verb returned
    after_create: list[str]
    after_start: list[str]
    after_program: list[str]
    before_delete: list[str]
    after_delete: list[str]
    # seen from the host right after create
    path_on_host: dict[Kind, bool]
    path_inside: dict[Kind, bool]
    init_root_shows_host: bool
    bind_inside: bool
    bind_on_host: bool
    program_env: list[str]


_OBSERVED: dict[int, Observed] = {}


def observed(containers: ContainerFactory) -> Observed:
    """The shared observation, made on first use (a failed attempt is retried by the next test)."""
    if id(containers) not in _OBSERVED:
        _OBSERVED[id(containers)] = _observe(containers)
    return _OBSERVED[id(containers)]


def _observe(containers: ContainerFactory) -> Observed:
    # A canary in the runtime's own environment (the client runs it with ours) and one in the
    # container's process.env: CVE-2025-23266 was a createContainer hook inheriting the latter.
    os.environ[RUNTIME_CANARY] = "from-the-runtime-environment"
    args = program(f"/bin/cat /proc/$$/environ >{INSIDE}/program.environ; {WAIT_FOREVER}")
    try:
        with hooked(containers, args, build=_layout, env=[DEFAULT_PATH_ENV, PROCESS_CANARY]) as h:
            h.ctr.create()
            after_create = h.hooks.order()
            pid = h.ctr.pid
            init_ns, host_ns = process_namespaces(pid), host_namespaces()
            scripts = {k: h.hooks.script_path(k, f"{k}-0") for k in KINDS}
            path_on_host = {k: Path(p).exists() for k, p in scripts.items()}
            path_inside = {k: Path(f"/proc/{pid}/root{p}").exists() for k, p in scripts.items()}
            probe = f"{INSIDE}/{KINDS[0]}-0.sh"
            init_root_shows_host = Path(f"/proc/{pid}/root{h.hooks.host}").exists()
            bind_inside = Path(f"/proc/{pid}/root{probe}").exists()
            bind_on_host = (h.bundle.rootfs / probe.lstrip("/")).exists()
            in_its_namespace = nspid(pid)[-1]
            h.ctr.start()
            after_start = h.hooks.order()
            wait_ready(h.ctr)
            after_program = h.hooks.order()
            h.ctr.kill("KILL")
            h.ctr.wait_for("stopped")
            before_delete = h.hooks.order()
            h.ctr.delete()
            after_delete = h.hooks.order()
            config = h.bundle.read_config()
            hooks_config: dict[str, list[dict[str, object]]] = config["hooks"]  # type: ignore[assignment]
            copy = containers.base_dir.parent / f"hook-records-{h.ctr.id}"
            shutil.copytree(h.hooks.host, copy)
            return Observed(
                cid=h.ctr.id,
                bundle=h.bundle.path,
                records=HookDir(host=copy, rootfs=h.hooks.rootfs, cid=h.ctr.id),
                pid=pid,
                pid_in_its_namespace=in_its_namespace,
                init_ns=init_ns,
                host_ns=host_ns,
                runtime_wrapped=bool(containers.client.prefix),
                program_args=list(config["process"]["args"]),  # type: ignore[index]
                hook_args={k: list(hooks_config[k][2]["args"]) for k in KINDS},  # type: ignore[call-overload]
                after_create=after_create,
                after_start=after_start,
                after_program=after_program,
                before_delete=before_delete,
                after_delete=after_delete,
                path_on_host=path_on_host,
                path_inside=path_inside,
                init_root_shows_host=init_root_shows_host,
                bind_inside=bind_inside,
                bind_on_host=bind_on_host,
                program_env=(copy / "program.environ").read_text().split("\0"),
            )
    finally:
        os.environ.pop(RUNTIME_CANARY, None)


def _whole_lifecycle(h: Hooked) -> None:
    h.ctr.create()
    h.ctr.start()
    wait_ready(h.ctr)
    h.ctr.kill("KILL")
    h.ctr.wait_for("stopped")
    h.ctr.delete()


def _dies(pid: int, what: str) -> None:
    try:
        ref = process_ref(pid)
    except ProcessLookupError:
        return  # already gone
    poll(lambda: True if not is_alive(ref) else None, timeout=STOP_WITHIN, what=what)


def _ran(order: list[str], names: Iterable[str]) -> list[str]:
    wanted = set(names)
    return [n for n in order if n in wanted]


# --- order against the lifecycle -------------------------------------------------------------


@pytest.mark.spec(
    "runtime.lifecycle.6",
    "runtime.lifecycle.8",
    "runtime.lifecycle.10",
    "config.prestart.2",
    "config.createcontainer-hooks.2",
    "config.posix-platform-hooks.20",
)
def test_create_runs_the_create_phase_hooks_in_listed_order(containers: ContainerFactory) -> None:
    seen = observed(containers)
    expected = [n for kind in CREATE_PHASE for n in _listed(kind)]
    ran = seen.after_create
    assert ran[: len(expected)] == expected, (
        f"when create returned the hooks had run in the order {ran}; expected prestart, then "
        f"createRuntime, then createContainer, each in listed order: {expected}"
    )
    early = [n for n in ran if n == PROGRAM or n.startswith(("startContainer", "poststop"))]
    assert not early, f"ran during create, before start or delete was asked for: {early}"


@pytest.mark.spec(
    "runtime.lifecycle.12",
    "runtime.lifecycle.14",
    "config.startcontainer-hooks.1",
    "config.posix-platform-hooks.20",
)
def test_start_runs_startcontainer_hooks_before_the_program(containers: ContainerFactory) -> None:
    seen = observed(containers)
    started = _listed("startContainer")
    assert not _ran(seen.after_create, started), (
        f"startContainer ran in create: {seen.after_create}"
    )
    ran = seen.after_program
    assert _ran(ran, [*started, PROGRAM]) == [*started, PROGRAM], (
        f"order seen: {ran}; the startContainer hooks must run, in listed order, before the "
        "user program"
    )


@pytest.mark.spec(
    "runtime.lifecycle.15",
    "config.poststart.1",
    "config.posix-platform-hooks.20",
)
def test_poststart_hooks_run_after_the_program_starts_and_before_start_returns(
    containers: ContainerFactory, dispute: Ask
) -> None:
    ruling = dispute("poststart-order")
    seen = observed(containers)
    poststart = _listed("poststart")
    early = _ran(seen.after_create, poststart)
    if early:
        ruling.require("during-create")
        _ran_during_create(seen, poststart)
        return
    ruling.require("after-program")
    ran = seen.after_start
    assert _ran(ran, poststart) == poststart, (
        f"when start returned the order was {ran}; every poststart hook, in listed order, must "
        "have run by then"
    )
    assert ran.index(poststart[0]) > ran.index(_listed("startContainer")[-1]), ran
    for name in poststart:
        cmdline = seen.records.record(name).init_cmdline
        assert cmdline == seen.program_args, (
            f"{name} saw the container's init running {cmdline}, not the user program "
            f"{seen.program_args}: it ran before the program was executed"
        )


def _ran_during_create(seen: Observed, poststart: list[str]) -> None:
    """runc's order, all of it: every poststart hook ran during create, in listed order, after
    every create-phase hook, while the init was still the runtime's and not the program."""
    ran = seen.after_create
    assert _ran(ran, poststart) == poststart, f"when create returned the order was {ran}"
    create_phase = [n for kind in CREATE_PHASE for n in _listed(kind)]
    assert ran.index(poststart[0]) > max(ran.index(n) for n in create_phase), ran
    assert PROGRAM not in ran, f"the program ran during create: {ran}"
    for name in poststart:
        cmdline = seen.records.record(name).init_cmdline
        # Control: the probe read a command line (the init is there to be seen).
        assert cmdline, f"{name} saw no container init at the state's pid"
        assert cmdline != seen.program_args, f"{name} ran after the program was executed"


@pytest.mark.spec(
    "runtime.lifecycle.19",
    "runtime.lifecycle.18",
    "config.poststop.1",
    "config.posix-platform-hooks.20",
)
def test_poststop_hooks_run_after_the_container_is_deleted_and_before_delete_returns(
    containers: ContainerFactory,
) -> None:
    seen = observed(containers)
    poststop = _listed("poststop")
    assert not _ran(seen.before_delete, poststop), (
        f"poststop ran before delete: {seen.before_delete}"
    )
    ran = seen.after_delete
    assert ran[-len(poststop) :] == poststop, f"when delete returned the order was {ran}"
    # Control: the same probe, run while the container existed, saw its cgroups.
    assert seen.records.record("createRuntime-0").cgroups, (
        "the cgroup probe saw no cgroup even while the container was being created"
    )
    for name in poststop:
        left = seen.records.record(name).cgroups
        assert left == [], f"{name} ran while the container's cgroups were still there: {left}"


# --- the state on stdin ----------------------------------------------------------------------

# runtime.md "State": created = create finished and the user program not executed yet;
# running = after step 8; stopped = the process exited (step 10). Steps 3-5 run inside create,
# after step 2: "creating" and "created" both describe them.
EXPECTED_STATUS: dict[Kind, tuple[str, ...]] = {
    "prestart": ("creating", "created"),
    "createRuntime": ("creating", "created"),
    "createContainer": ("creating", "created"),
    "startContainer": ("created",),
    "poststart": ("running",),
    "poststop": ("stopped",),
}


@pytest.mark.spec("config.posix-platform-hooks.21", "runtime.state.9")
@pytest.mark.parametrize("kind", KINDS)
def test_each_hook_gets_the_state_on_stdin(
    containers: ContainerFactory, kind: Kind, dispute: Ask
) -> None:
    seen = observed(containers)
    expected = EXPECTED_STATUS[kind]
    if kind == "poststart" and _ran(seen.after_create, _listed(kind)):
        # runc's order (poststart during create): the state is that moment's, 'created'.
        dispute("poststart-order").require("during-create")
        expected = ("created",)
    # The kernel's word that the pid from `state` is the container's init.
    assert seen.pid_in_its_namespace == 1, f"pid {seen.pid} is not pid 1 of its pid namespace"
    for name in _listed(kind):
        state = seen.records.record(name).state()
        validate_against("state-schema.json", state)
        assert state["id"] == seen.cid
        assert state["bundle"] == str(seen.bundle), "bundle must be the absolute bundle path"
        assert state["status"] in expected, (
            f"a {kind} hook was told status {state['status']!r}; at that step of the lifecycle "
            f"the container is {' or '.join(expected)}"
        )
        # runtime.md "State": the pid as seen from the namespace the hook runs in.
        if kind in RUNS_IN_CONTAINER:
            assert state.get("pid") == 1, f"the init is pid 1 in the container: {state}"
        elif kind != "poststop":
            assert state.get("pid") == seen.pid, f"the init is pid {seen.pid} on the host: {state}"


# --- where hooks run ---------------------------------------------------------------------------


# Per kind: path resolution (config.<kind>.N, posix-platform-hooks.5/10/12/14/16/18) and the
# namespace it executes in (the next id of each pair).
@pytest.mark.spec(
    "config.prestart.3", "config.prestart.4",
    "config.posix-platform-hooks.5", "config.posix-platform-hooks.6",
    "config.createruntime-hooks.2", "config.createruntime-hooks.3",
    "config.posix-platform-hooks.10", "config.posix-platform-hooks.11",
    "config.createcontainer-hooks.3", "config.createcontainer-hooks.4",
    "config.posix-platform-hooks.12", "config.posix-platform-hooks.13",
    "config.startcontainer-hooks.2", "config.startcontainer-hooks.3",
    "config.posix-platform-hooks.14", "config.posix-platform-hooks.15",
    "config.poststart.2", "config.poststart.3",
    "config.posix-platform-hooks.16", "config.posix-platform-hooks.17",
    "config.poststop.2", "config.poststop.3",
    "config.posix-platform-hooks.18", "config.posix-platform-hooks.19",
)  # fmt: skip
@pytest.mark.parametrize("kind", KINDS)
def test_each_hook_runs_in_its_namespace_from_a_path_resolved_there(
    containers: ContainerFactory, kind: Kind
) -> None:
    seen = observed(containers)
    init, host = seen.init_ns, seen.host_ns
    # Control: the container has namespaces of its own, so "equal to the host's" and "equal
    # to the container's" are different answers.
    same = [t for t in OWN_NAMESPACES if init[t] == host[t]]
    assert not same, f"the container shares the host's {same}: nothing to tell apart"
    # The hook's path exists on one side only: resolved on the other, the hook cannot run.
    on_host, inside = seen.path_on_host[kind], seen.path_inside[kind]
    if kind in PATH_IN_CONTAINER:
        assert inside and not on_host, f"path: in the container {inside}, on the host {on_host}"
    else:
        assert on_host and not inside, f"path: on the host {on_host}, in the container {inside}"
    ns = seen.records.record(f"{kind}-0").ns
    assert ns is not None, f"the {kind} hook did not run"
    if kind in RUNS_IN_CONTAINER:
        wrong = {t: ns[t] for t in NS_TYPES if ns[t] != init[t]}
        assert not wrong, f"{kind} must run in the container's namespaces; differs: {wrong}"
        return
    wrong = {t: ns[t] for t in NS_TYPES if t != "mnt" and ns[t] != host[t]}
    assert not wrong, f"{kind} must run in the runtime's namespaces; differs: {wrong}"
    if seen.runtime_wrapped:
        # The runtime itself runs in a private mount namespace of the suite's wrapper (crun on
        # a hybrid host, see the README): its mount namespace is neither the test's nor the
        # container's. (Once the container is gone its namespace's inode number may be handed
        # to a new namespace, the next wrapper's: poststop has nothing alive to compare with.)
        if kind != "poststop":
            assert ns["mnt"] != init["mnt"], f"{kind} ran in the container's mount namespace"
    else:
        assert ns["mnt"] == host["mnt"], f"{kind} ran in another mount namespace"


@pytest.mark.spec(
    "config.prestart.1", "config.createruntime-hooks.1", "config.createcontainer-hooks.1"
)
@pytest.mark.parametrize("kind", CREATE_PHASE)
def test_create_phase_hooks_run_after_the_environment_is_built_and_before_pivot_root(
    containers: ContainerFactory, kind: Kind
) -> None:
    seen = observed(containers)
    # Controls: once create returned, the init's root is the container's (the host's tree, our
    # directory included, is gone from it), and the bind mount of our directory is in the
    # container's mount namespace only, not on the host.
    assert not seen.init_root_shows_host, "after create the init's root still shows the host's"
    assert seen.bind_inside and not seen.bind_on_host, (seen.bind_inside, seen.bind_on_host)
    record = seen.records.record(f"{kind}-0")
    assert record.ns is not None, f"the {kind} hook did not run during create"
    if kind == "createContainer":
        # It runs in the container's mount namespace (the namespace test checks that) and wrote
        # to our directory by its host path: the root was not pivoted yet.
        assert record.mounts_done, "the container's mounts were not made when it ran"
        return
    assert record.init_ns is not None, "the hook saw no container init at the state's pid"
    missing = [t for t in OWN_NAMESPACES if record.init_ns[t] == seen.host_ns[t]]
    assert not missing, f"the container had no namespaces of its own yet: {missing}"
    assert record.init_mounts_done, "the container's mounts were not made when it ran"
    assert record.init_sees_host, "the container's root was already pivoted when it ran"


# --- args, env ---------------------------------------------------------------------------------


@pytest.mark.spec("config.posix-platform-hooks.apply-hook-args-env")
@pytest.mark.parametrize("kind", KINDS)
def test_hook_args_are_passed_exactly(containers: ContainerFactory, kind: Kind) -> None:
    seen = observed(containers)
    configured = seen.hook_args[kind]
    assert configured[0] == ARGV[0] and configured[2:] == list(ARGV[1:]), configured
    argv = seen.records.record(f"{kind}-args").argv
    assert argv is not None, f"the {kind} hook did not run"
    assert argv == configured, f"the {kind} hook ran with argv {argv}, not {configured}"


@pytest.mark.spec("config.posix-platform-hooks.apply-hook-args-env")
@pytest.mark.cve("CVE-2025-23266")
@pytest.mark.parametrize("kind", KINDS)
def test_hook_env_is_exactly_the_configured_one(containers: ContainerFactory, kind: Kind) -> None:
    seen = observed(containers)
    env = seen.records.record(f"{kind}-env").environ
    assert env is not None, f"the {kind} hook did not run"
    assert env == list(HOOK_ENV), f"the {kind} hook's environment is {env}, not {HOOK_ENV}"
    # Controls: both canaries were there to be inherited.
    assert PROCESS_CANARY in seen.program_env, "the user program did not get its process.env"
    runtime_env = seen.records.record("prestart-0").parent_environ or []
    assert any(v.startswith(RUNTIME_CANARY + "=") for v in runtime_env), (
        "the runtime (the prestart hook's parent) did not have the canary in its environment"
    )


# --- timeout -----------------------------------------------------------------------------------


Layout = Callable[[HookDir], Iterable[tuple[Kind, Hook]]]


def _sleeper(kind: Kind, *, sleep: float, timeout: int) -> Layout:
    def build(d: HookDir) -> list[tuple[Kind, Hook]]:
        return [
            ("prestart", d.hook("prestart", "witness")),
            (kind, d.hook(kind, "slow", sleep=sleep, timeout=timeout)),
            (kind, d.hook(kind, "after")),
        ]

    return build


def _sleeping(h: Hooked, kind: Kind) -> bool:
    """Whether the sleeping hook's process lives on (its ``$$`` is a host pid only where the
    hook runs in the runtime's namespaces; the others die with the container's pid namespace)."""
    pid = h.hooks.record("slow").pid
    if pid is None or kind in RUNS_IN_CONTAINER:
        return False
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/bin/sleep\0")
    except (FileNotFoundError, ProcessLookupError):
        return False


# poststart is left out: its failure rule (runtime.lifecycle.16) is the failing-hook test's.
@pytest.mark.spec("config.posix-platform-hooks.apply-hook-timeout")
@pytest.mark.parametrize(
    "kind", ["prestart", "createRuntime", "createContainer", "startContainer", "poststop"]
)
def test_a_hook_past_its_timeout_is_aborted_and_counts_as_failed(
    containers: ContainerFactory, kind: Kind
) -> None:
    # Control: the same hook, finishing within its timeout, lets everything go through.
    with hooked(
        containers, program(WAIT_FOREVER), build=_sleeper(kind, sleep=0.2, timeout=MAX_SLEEP)
    ) as h:
        _whole_lifecycle(h)
        ran = h.hooks.order()
        assert "slow" in ran and "after" in ran and PROGRAM in ran, ran

    with hooked(
        containers, program(WAIT_FOREVER), build=_sleeper(kind, sleep=MAX_SLEEP, timeout=1)
    ) as h:
        if kind in CREATE_PHASE:
            call = h.ctr.create(check=False)
            assert refused(call), "create succeeded though a hook overran its 1 s timeout"
            assert call.duration < MAX_SLEEP - 1, f"create waited {call.duration:.1f} s"
        elif kind == "startContainer":
            h.ctr.create()
            pid = h.ctr.pid
            h.ctr.start(check=False)
            _dies(pid, "the container whose startContainer hook overran its timeout to stop")
            assert PROGRAM not in h.hooks.order(), "the user program ran after the hook overran"
        else:
            h.ctr.create()
            h.ctr.start()
            wait_ready(h.ctr)
            h.ctr.kill("KILL")
            h.ctr.wait_for("stopped")
            call = h.ctr.delete(check=False)
            assert call.returncode == 0, "a poststop hook's failure is a warning only"
            assert call.duration < MAX_SLEEP - 1, f"delete waited {call.duration:.1f} s"
        assert h.hooks.ran("slow"), "the slow hook never started"
        # (After a failed poststop hook the rest run on: that rule is checked further down.)
        if kind != "poststop":
            assert "after" not in h.hooks.order(), "a hook after the overrunning one still ran"
        assert not _sleeping(h, kind), "the overrunning hook was left running"


# --- failures ----------------------------------------------------------------------------------


def _failing(kind: Kind, *, fails: bool, with_poststop: bool = False) -> Layout:
    """witness (prestart), then first / failing / third of ``kind``, then one of each later kind."""

    def build(d: HookDir) -> Iterator[tuple[Kind, Hook]]:
        yield "prestart", d.hook("prestart", "witness")
        yield kind, d.hook(kind, "first")
        yield kind, d.hook(kind, "failing", exit_code=1 if fails else 0)
        yield kind, d.hook(kind, "third")
        for later in KINDS[KINDS.index(kind) + 1 :]:
            if later != "poststop":
                yield later, d.hook(later, f"later-{later}")
        if with_poststop and kind != "poststop":
            yield "poststop", d.hook("poststop", "cleanup")

    return build


@pytest.mark.spec("runtime.lifecycle.7", "runtime.lifecycle.9", "runtime.lifecycle.11")
@pytest.mark.parametrize("kind", CREATE_PHASE)
def test_a_failing_create_phase_hook_fails_create_and_destroys_the_container(
    containers: ContainerFactory, kind: Kind
) -> None:
    with hooked(containers, program(WAIT_FOREVER), build=_failing(kind, fails=False)) as h:
        h.ctr.create()
        h.ctr.start()
        wait_ready(h.ctr)
        ran = h.hooks.order()
        assert [n for n in ran if n in ("first", "failing", "third")] == [
            "first",
            "failing",
            "third",
        ]
        assert PROGRAM in ran

    with hooked(containers, program(WAIT_FOREVER), build=_failing(kind, fails=True)) as h:
        call = h.ctr.create(check=False)
        assert refused(call), f"create succeeded though a {kind} hook exited 1"
        witness = h.hooks.record("witness")
        pid = witness.state().get("pid")
        assert isinstance(pid, int) and pid > 0, witness.stdin
        ran = h.hooks.order()
        assert "failing" in ran, f"the failing hook never ran: {ran}"
        later = [n for n in ran if n == "third" or n.startswith("later-")]
        assert not later, f"hooks after the failed one still ran: {later}"
        _dies(pid, f"the container's init (pid {pid}) to be stopped after the failed create")
        # Control: the container's cgroups existed while it was made (the witness saw them).
        assert witness.cgroups, "the witness saw no cgroup while the container was made"
        left = cgroup_dirs(h.ctr.id)
        assert not left, f"the failed create left the container's cgroups: {left}"
        assert refused(h.ctr.start(check=False)), "a container whose create failed started"
        assert PROGRAM not in h.hooks.order(), "the user program ran"


@pytest.mark.spec("runtime.lifecycle.7", "runtime.lifecycle.9", "runtime.lifecycle.11")
@pytest.mark.parametrize("kind", CREATE_PHASE)
def test_a_failing_create_phase_hook_runs_poststop_after_destroying_the_container(
    containers: ContainerFactory, kind: Kind
) -> None:
    _fails_then_poststop(containers, kind)


@pytest.mark.spec("runtime.lifecycle.13")
def test_a_failing_startcontainer_hook_runs_poststop_after_destroying_the_container(
    containers: ContainerFactory,
) -> None:
    _fails_then_poststop(containers, "startContainer")


def _fails_then_poststop(containers: ContainerFactory, kind: Kind) -> None:
    # Control: with the hook succeeding, poststop waits for delete.
    with hooked(
        containers, program(WAIT_FOREVER), build=_failing(kind, fails=False, with_poststop=True)
    ) as h:
        h.ctr.create()
        h.ctr.start()
        wait_ready(h.ctr)
        assert not h.hooks.ran("cleanup"), "poststop ran before delete"
        h.ctr.kill("KILL")
        h.ctr.wait_for("stopped")
        h.ctr.delete()
        assert h.hooks.ran("cleanup"), "poststop did not run on delete"

    # runtime.md "Lifecycle": a failing hook stops the container and the lifecycle continues at
    # step 12 (destroy) and 13 (poststop), without anyone calling delete.
    with hooked(
        containers, program(WAIT_FOREVER), build=_failing(kind, fails=True, with_poststop=True)
    ) as h:
        if kind == "startContainer":
            h.ctr.create()
            h.ctr.start(check=False)
        else:
            h.ctr.create(check=False)
        poll(
            lambda: True if h.hooks.ran("cleanup") else None,
            timeout=POSTSTOP_WITHIN,
            what=f"poststop hooks to run after a failing {kind} hook",
        )
        left = h.hooks.record("cleanup").cgroups
        assert left == [], f"poststop ran before the container's cgroups were removed: {left}"


@pytest.mark.spec("runtime.lifecycle.13", "config.startcontainer-hooks.1")
def test_a_failing_startcontainer_hook_keeps_the_program_from_running(
    containers: ContainerFactory,
) -> None:
    with hooked(
        containers, program(WAIT_FOREVER), build=_failing("startContainer", fails=False)
    ) as h:
        h.ctr.create()
        h.ctr.start()
        wait_ready(h.ctr)
        ran = [n for n in h.hooks.order() if n in ("first", "failing", "third", PROGRAM)]
        assert ran == ["first", "failing", "third", PROGRAM]

    with hooked(
        containers, program(WAIT_FOREVER), build=_failing("startContainer", fails=True)
    ) as h:
        h.ctr.create()
        pid = h.ctr.pid
        h.ctr.start(check=False)
        _dies(pid, "the container whose startContainer hook failed to stop")
        ran = h.hooks.order()
        assert "failing" in ran, f"the failing hook never ran: {ran}"
        assert "third" not in ran, "a startContainer hook after the failed one still ran"
        assert PROGRAM not in ran, "the user program ran though a startContainer hook failed"


@pytest.mark.spec("runtime.lifecycle.13")
def test_a_failing_startcontainer_hook_makes_start_fail(containers: ContainerFactory) -> None:
    with hooked(
        containers, program(WAIT_FOREVER), build=_failing("startContainer", fails=False)
    ) as h:
        h.ctr.create()
        assert h.ctr.start(check=False).returncode == 0
        wait_ready(h.ctr)

    with hooked(
        containers, program(WAIT_FOREVER), build=_failing("startContainer", fails=True)
    ) as h:
        h.ctr.create()
        call = h.ctr.start(check=False)
        assert h.hooks.ran("failing"), "the failing hook never ran"
        assert refused(call), "start succeeded though a startContainer hook exited 1"


@pytest.mark.spec("runtime.lifecycle.16")
def test_a_failing_poststart_hook_fails_start_and_stops_the_container(
    containers: ContainerFactory, dispute: Ask
) -> None:
    ruling = dispute("poststart-failure")
    with hooked(
        containers,
        program(WAIT_FOREVER),
        build=_failing("poststart", fails=False, with_poststop=True),
    ) as h:
        h.ctr.create()
        pid = h.ctr.pid
        h.ctr.start()
        wait_ready(h.ctr)
        assert is_alive(process_ref(pid))
        assert h.hooks.ran("third")

    # v1.3.0 (runtime.md "Lifecycle" step 9): an error, the container stopped and destroyed,
    # poststop run. Before v1.3.0 this was a warning only.
    with hooked(
        containers,
        program(WAIT_FOREVER),
        build=_failing("poststart", fails=True, with_poststop=True),
    ) as h:
        if refused(h.ctr.create(check=False)):
            ruling.require("create-fails")
            _poststart_failed_create(h)
            return
        pid = h.ctr.pid
        call = h.ctr.start(check=False)
        assert h.hooks.ran("failing"), "the failing poststart hook never ran"
        if not refused(call):
            ruling.require("warned")
        ruling.require("start-fails")
        assert not h.hooks.ran("third"), "a poststart hook after the failed one still ran"
        _dies(pid, "the container whose poststart hook failed to stop")
        poll(
            lambda: True if h.hooks.ran("cleanup") else None,
            timeout=POSTSTOP_WITHIN,
            what="poststop hooks to run after a failing poststart hook",
        )


def _poststart_failed_create(h: Hooked) -> None:
    """runc's way, all of it: its poststart hooks run in create, and the failure there is
    handled as runtime.md's step 9 handles it in start: the rest skipped, the container stopped
    and destroyed, poststop run, and nothing left to start."""
    ran = h.hooks.order()
    assert "failing" in ran, f"create failed before the failing poststart hook ran: {ran}"
    assert not h.hooks.ran("third"), "a poststart hook after the failed one still ran"
    witness = h.hooks.record("witness")
    pid = witness.state().get("pid")
    assert isinstance(pid, int) and pid > 0, witness.stdin
    _dies(pid, f"the container's init (pid {pid}) to be stopped after the failed create")
    poll(
        lambda: True if h.hooks.ran("cleanup") else None,
        timeout=POSTSTOP_WITHIN,
        what="poststop hooks to run after a failing poststart hook",
    )
    # Control: the witness saw the container's cgroups while it was made.
    assert witness.cgroups, "the witness saw no cgroup while the container was made"
    assert h.hooks.record("cleanup").cgroups == [], "poststop ran before the cgroups were gone"
    assert not cgroup_dirs(h.ctr.id), "the failed create left the container's cgroups"
    assert refused(h.ctr.start(check=False)), "a container whose create failed started"
    assert PROGRAM not in h.hooks.order(), "the user program ran"


def _poststop_failure(h: Hooked) -> int:
    h.ctr.create()
    h.ctr.start()
    wait_ready(h.ctr)
    h.ctr.kill("KILL")
    h.ctr.wait_for("stopped")
    return h.ctr.delete(check=False).returncode


@pytest.mark.spec("runtime.lifecycle.20")
def test_a_failing_poststop_hook_is_only_a_warning(containers: ContainerFactory) -> None:
    with hooked(containers, program(WAIT_FOREVER), build=_failing("poststop", fails=True)) as h:
        code = _poststop_failure(h)
        assert h.hooks.ran("failing"), "the failing poststop hook never ran"
        assert code == 0, "delete failed because a poststop hook exited 1: that is a warning only"
        assert refused(h.ctr.client.raw_state(h.ctr.id, check=False)), (
            "the container is still there"
        )
        assert not cgroup_dirs(h.ctr.id), "delete left the container's cgroups"


@pytest.mark.spec("runtime.lifecycle.20")
def test_later_poststop_hooks_still_run_after_one_fails(containers: ContainerFactory) -> None:
    with hooked(containers, program(WAIT_FOREVER), build=_failing("poststop", fails=True)) as h:
        _poststop_failure(h)
        ran = h.hooks.order()
        assert [n for n in ran if n in ("first", "failing", "third")] == [
            "first",
            "failing",
            "third",
        ], (
            f"order seen: {ran}; after a failing poststop hook the remaining ones run as if it "
            "had succeeded"
        )
