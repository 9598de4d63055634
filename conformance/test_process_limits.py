"""Limits and scheduling of the container process (config.md: POSIX process, Linux process;
config-linux.md: Personality): rlimits, oom_score_adj, scheduler, I/O priority, personality,
AppArmor and SELinux, each read back by the container process from its own /proc/$$."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from hypothesis import given

from bulkhead import strategies
from bulkhead.containers import ContainerFactory, Result
from bulkhead.runtime import Call, RuntimeClient
from bulkhead.spec import IOPriority, Personality, Rlimit, Scheduler, Spec
from bulkhead.strategies import _process_attrs as attrs
from conformance._process_probe import SNAPSHOT, Snapshot, snapshot_script
from conformance._support import refused, sh, skip_unless_declared_spec_version


def with_rlimits(spec: Spec, limits: list[Rlimit]) -> Spec:
    assert spec.process is not None
    # Drawn limits replace the default of the same type (config.md wants the types unique).
    merged = {limit.type: limit for limit in [*(spec.process.rlimits or []), *limits]}
    spec.process.rlimits = list(merged.values())
    return spec


# --- rlimits ------------------------------------------------------------------------------------


@pytest.mark.spec("config.posix-process.5", "config.posix-process.7")
@given(limits=strategies.rlimits())
def test_rlimits_are_applied(containers: ContainerFactory, limits: list[Rlimit]) -> None:
    spec = with_rlimits(containers.spec(sh(SNAPSHOT)), limits)
    assert spec.process is not None and spec.process.rlimits
    seen = Snapshot.parse(containers.run(spec)).limits()
    assert {r.type: seen[r.type] for r in spec.process.rlimits} == {
        r.type: (r.soft, r.hard) for r in spec.process.rlimits
    }


# getrlimit(2) in the container process itself: sh's ulimit builtin, in a subshell (a fork).
_GETRLIMIT_NOFILE = 'echo "@@getrlimit"; { ulimit -S -n; ulimit -H -n; } | od -An -v -tx1'


@pytest.mark.spec("config.posix-process.5", "config.posix-process.7", "config.posix-process.3")
def test_rlimits_below_the_runtimes_own_are_applied(containers: ContainerFactory) -> None:
    # Values no runtime inherits by chance (this host's own are 20000 files, 8 MiB locked...).
    limits = [
        Rlimit(type="RLIMIT_NOFILE", soft=321, hard=654),
        Rlimit(type="RLIMIT_CORE", soft=4096, hard=8192),
        Rlimit(type="RLIMIT_MEMLOCK", soft=65536, hard=131072),
    ]
    spec = with_rlimits(containers.spec(sh(f"{SNAPSHOT}; {_GETRLIMIT_NOFILE}")), limits)
    seen = Snapshot.parse(containers.run(spec))
    assert {r.type: seen.limits()[r.type] for r in limits} == {
        r.type: (r.soft, r.hard) for r in limits
    }
    assert seen.text("getrlimit").split() == ["321", "654"]


def _runs_with(containers: ContainerFactory, limits: list[Rlimit]) -> tuple[Call, bool]:
    """The run's call, and whether its process ran (it writes /ran, seen in the upper)."""
    spec = containers.spec(sh("ulimit -n; touch /ran"))
    assert spec.process is not None
    spec.process.rlimits = limits
    with containers.bundle(spec) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        return call, (bundle.upper / "ran").exists()


@pytest.mark.spec("config.posix-process.2")
def test_an_rlimit_type_the_kernel_lacks_is_refused(containers: ContainerFactory) -> None:
    nofile = Rlimit(type="RLIMIT_NOFILE", soft=500, hard=500)
    control, ran = _runs_with(containers, [nofile])
    assert control.returncode == 0 and control.stdout.split() == ["500"] and ran, control
    call, ran = _runs_with(containers, [nofile, Rlimit(type="RLIMIT_BOGUS", soft=1, hard=1)])
    assert refused(call), "RLIMIT_BOGUS was accepted"
    assert not ran, "the process ran although the config was refused"


@pytest.mark.spec("config.posix-process.8")
def test_two_rlimits_of_one_type_are_refused(containers: ContainerFactory) -> None:
    # Lowering twice, so neither entry fails on its own (a hard limit can only go down here).
    control, ran = _runs_with(containers, [Rlimit(type="RLIMIT_NOFILE", soft=200, hard=200)])
    assert control.returncode == 0 and control.stdout.split() == ["200"] and ran, control
    twice = [
        Rlimit(type="RLIMIT_NOFILE", soft=200, hard=200),
        Rlimit(type="RLIMIT_NOFILE", soft=100, hard=100),
    ]
    call, ran = _runs_with(containers, twice)
    assert refused(call), f"two RLIMIT_NOFILE entries were accepted: {call.stdout!r}"
    assert not ran, "the process ran although the config was refused"


# --- oomScoreAdj --------------------------------------------------------------------------------


@pytest.mark.spec("config.linux-process.3")
@given(value=attrs.oom_score_adjs())
def test_oom_score_adj_is_applied(containers: ContainerFactory, value: int) -> None:
    spec = containers.spec(sh(SNAPSHOT))
    assert spec.process is not None
    spec.process.oom_score_adj = value
    assert int(Snapshot.parse(containers.run(spec)).text("oom_score_adj")) == value


def raised_oom_client(client: RuntimeClient, value: int) -> RuntimeClient:
    """The same runtime, started from a shell that first raised its own oom_score_adj to
    ``value`` (raising needs no privilege; only the runtime's process tree is affected)."""
    raise_first = ("sh", "-c", f'echo {value} >/proc/self/oom_score_adj && exec "$@"', "sh")
    return RuntimeClient(
        client.binary,
        root=client.root,
        global_args=client.global_args,
        prefix=(*raise_first, *client.prefix),
        timeout=client.timeout,
        log=client.log,
    )


@pytest.mark.spec("config.linux-process.4", "config.linux-process.3")
def test_without_oom_score_adj_the_runtimes_own_is_inherited(
    containers: ContainerFactory,
) -> None:
    inherited = min(attrs.current_oom_score_adj() + 7, 1000)
    client = raised_oom_client(containers.client, inherited)
    seen = {}
    # Unset, the container keeps what its runtime had; set, the control shows the same
    # wrapped runtime does apply a value (so "inherited" is not all it can do).
    for configured in (None, min(inherited + 5, 1000)):
        spec = containers.spec(sh(SNAPSHOT))
        assert spec.process is not None
        spec.process.oom_score_adj = configured
        with containers.bundle(spec) as (cid, bundle):
            run = Snapshot.parse(Result.of(client.run(cid, bundle.path)))
        seen[configured] = int(run.text("oom_score_adj"))
    assert seen == {None: inherited, min(inherited + 5, 1000): min(inherited + 5, 1000)}


# --- scheduler, ioPriority, personality (newer fields, gated on `features`) ---------------------


def skip_unless_declared(runtime: RuntimeClient, needed: str, what: str) -> None:
    # Runtimes ignore fields they do not know, so an undeclared one tells nothing.
    skip_unless_declared_spec_version(runtime, needed, what, must_declare=True)


def stat_fields(containers: ContainerFactory, spec: Spec) -> list[str]:
    """/proc/$$/stat of the container process, from field 3 (state) on (proc(5))."""
    seen = Snapshot.parse(containers.run(spec))
    return seen.text("stat").rpartition(")")[2].split()


# proc(5) numbers the fields from 1: nice is 19, rt_priority 40, policy 41; from state (3) on.
_NICE, _RT_PRIORITY, _POLICY = 19 - 3, 40 - 3, 41 - 3
_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_IDLE": 5}


@pytest.mark.spec("config.linux-process.apply-scheduler")
@pytest.mark.parametrize(
    "scheduler",
    [Scheduler(policy="SCHED_BATCH", nice=7), Scheduler(policy="SCHED_IDLE")],
    ids=["batch-nice-7", "idle"],
)
def test_the_scheduler_is_applied(containers: ContainerFactory, scheduler: Scheduler) -> None:
    skip_unless_declared(containers.client, "1.1.0", "process.scheduler")
    spec = containers.spec(sh(snapshot_script(["stat"])))
    assert spec.process is not None
    spec.oci_version = "1.1.0"
    spec.process.scheduler = scheduler
    fields = stat_fields(containers, spec)
    assert int(fields[_POLICY]) == _POLICIES[scheduler.policy]
    # Unset numeric fields mean 0 (config.md, scheduler).
    assert int(fields[_NICE]) == (scheduler.nice or 0)
    assert int(fields[_RT_PRIORITY]) == (scheduler.priority or 0)


@pytest.mark.spec("config.linux-process.apply-io-priority")
@pytest.mark.parametrize(
    ("priority", "shown"),
    [
        (IOPriority(class_="IOPRIO_CLASS_BE", priority=6), "best-effort: prio 6"),
        # busybox ionice prints no level for the idle class.
        (IOPriority(class_="IOPRIO_CLASS_IDLE", priority=0), "idle"),
    ],
    ids=["best-effort-6", "idle"],
)
def test_the_io_priority_is_applied(
    containers: ContainerFactory, priority: IOPriority, shown: str
) -> None:
    skip_unless_declared(containers.client, "1.1.0", "process.ioPriority")
    # ionice(1) reads it with ioprio_get(2) for the container process itself ($$).
    spec = containers.spec(sh("ionice -p $$"))
    assert spec.process is not None
    spec.oci_version = "1.1.0"
    spec.process.io_priority = priority
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == shown


@pytest.mark.spec("config-linux.personality.apply-personality")
def test_the_personality_is_applied(containers: ContainerFactory) -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"LINUX32 is checked as i686 on x86_64; this host is {platform.machine()}")
    skip_unless_declared(containers.client, "1.0.2", "linux.personality")
    # The control first: without a personality the same probe reports the 64-bit machine.
    for domain, machine in ((None, "x86_64"), ("LINUX32", "i686")):
        spec = containers.spec(["uname", "-m"])
        assert spec.linux is not None
        spec.linux.personality = Personality(domain=domain) if domain else None
        result = containers.run(spec)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == machine, f"personality {domain}"


# --- AppArmor and SELinux (only where the host has them) ---------------------------------------

_APPARMOR = Path("/sys/kernel/security/apparmor")
_SELINUX = Path("/sys/fs/selinux")


def _enforced_apparmor_profile() -> str:
    if not (_APPARMOR / "profiles").is_file():
        pytest.skip(f"AppArmor is not enabled on this host ({_APPARMOR}/profiles is missing)")
    for line in (_APPARMOR / "profiles").read_text().splitlines():
        name, _, mode = line.rpartition(" ")
        if mode == "(enforce)":
            return name
    pytest.skip("AppArmor is enabled but no profile is loaded in enforce mode")


@pytest.mark.spec("config.linux-process.apply-apparmor-profile")
def test_the_apparmor_profile_confines_the_process(containers: ContainerFactory) -> None:
    profile = _enforced_apparmor_profile()
    spec = containers.spec(sh("cat /proc/$$/attr/current"))
    assert spec.process is not None
    spec.process.apparmor_profile = profile
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"{profile} (enforce)"


@pytest.mark.spec("config.linux-process.apply-selinux-label")
def test_the_selinux_label_is_applied(containers: ContainerFactory) -> None:
    if not (_SELINUX / "enforce").is_file():
        pytest.skip(f"SELinux is not enabled on this host ({_SELINUX} is not mounted)")
    # Our own context: one the loaded policy surely knows.
    label = Path("/proc/self/attr/current").read_text().rstrip("\0\n")
    spec = containers.spec(sh("cat /proc/$$/attr/current"))
    assert spec.process is not None
    spec.process.selinux_label = label
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip("\0\n") == label
