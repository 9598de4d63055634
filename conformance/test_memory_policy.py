"""The NUMA memory policy of the container process (config-linux.md "Memory policy",
features-linux.md "MemoryPolicy", runtime-spec v1.3.0).

The policy a process runs under is read from its own ``/proc/self/numa_maps``: a mapping without
a policy of its own shows the task's (proc(5), mpol_to_str: ``bind:0``, ``interleave=static:0``,
``local``...), and the policy is inherited across fork(2) and kept across execve(2)
(set_mempolicy(2)), so the first line a program prints shows what the runtime set. Nodes are
the host's first online node, which every host has. Runtimes ignore fields they do not know, so
everything here is gated on the runtime's features declaring memoryPolicy (runc 1.1 and crun 1.8
predate it).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import ContainerFactory, Result
from conformance._features import assert_none, features, run_config
from conformance._support import sh

# set_mempolicy(2) / linux/mempolicy.h.
MODES = {
    "MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6,
}  # fmt: skip
FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
         "MPOL_F_NUMA_BALANCING": 1 << 13}  # fmt: skip
# How numa_maps names each mode (mm/mempolicy.c policy_modes[]) and flag.
SHOWN = {
    "MPOL_DEFAULT": "default", "MPOL_PREFERRED": "prefer", "MPOL_BIND": "bind",
    "MPOL_INTERLEAVE": "interleave", "MPOL_LOCAL": "local",
    "MPOL_PREFERRED_MANY": "prefer (many)", "MPOL_WEIGHTED_INTERLEAVE": "weighted interleave",
}  # fmt: skip
SHOWN_FLAG = {"MPOL_F_STATIC_NODES": "static", "MPOL_F_RELATIVE_NODES": "relative",
              "MPOL_F_NUMA_BALANCING": "balancing"}  # fmt: skip
WITHOUT_NODES = frozenset({"MPOL_DEFAULT", "MPOL_LOCAL"})
PRINT_POLICY = "head -n 1 /proc/self/numa_maps"
SYS_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237}


def first_node() -> int:
    online = Path("/sys/devices/system/node/online")
    if not online.exists():
        pytest.skip("no /sys/devices/system/node/online: this kernel has no NUMA support")
    return int(online.read_text().strip().split(",")[0].split("-")[0])


def host_allows(mode: str, flags: Sequence[str], node: int) -> bool:
    """Whether this kernel takes the policy at all: set_mempolicy(2) in a forked child of ours
    (EINVAL for a mode or flag the kernel predates)."""
    number = SYS_SET_MEMPOLICY.get(os.uname().machine)
    if number is None or mode not in MODES or any(f not in FLAGS for f in flags):
        return True  # nothing to ask: judge the runtime alone
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            mask = ctypes.c_ulong(0 if mode in WITHOUT_NODES else 1 << node)
            bits = sum(FLAGS[f] for f in flags) | MODES[mode]
            nbits = 0 if mode in WITHOUT_NODES else 64
            ok = libc.syscall(number, bits, ctypes.byref(mask), nbits) == 0
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def memory_policies(containers: ContainerFactory) -> dict[str, Any]:
    doc = features(containers.client)
    policy = (doc.get("linux") or {}).get("memoryPolicy")
    if not isinstance(policy, dict):
        pytest.skip(
            f"{containers.client.name} declares no memoryPolicy in its features "
            f"(ociVersionMax {doc.get('ociVersionMax')}; memoryPolicy arrived in 1.3.0)"
        )
    return policy


def expected(mode: str, flags: Sequence[str], node: int) -> str:
    shown = SHOWN[mode]
    names = [SHOWN_FLAG[f] for f in flags if f in SHOWN_FLAG]
    if names:
        # mpol_to_str: "=" then static/relative, then "|balancing" (or "balancing" alone).
        shown += "=" + "|".join(names)
    return shown if mode in WITHOUT_NODES else f"{shown}:{node}"


def run_policy(containers: ContainerFactory, mode: str, flags: Sequence[str], node: int) -> Result:
    def change(config: dict[str, Any], _: Path) -> None:
        config["ociVersion"] = "1.3.0"
        policy: dict[str, Any] = {"mode": mode}
        if mode not in WITHOUT_NODES:
            policy["nodes"] = str(node)
        if flags:
            policy["flags"] = list(flags)
        config["linux"]["memoryPolicy"] = policy

    return run_config(containers, sh(PRINT_POLICY), change)


def _policy_field(line: str) -> str:
    rest = line.partition(" ")[2]
    # The policy ends where the per-mapping fields begin (file=, anon=, heap, stack, ...).
    words: list[str] = []
    for word in rest.split(" "):
        if words and (word.startswith(("file=", "anon=", "dirty=", "mapped=", "N")) or
                      word in ("heap", "stack", "huge")):  # fmt: skip
            break
        words.append(word)
    return " ".join(words)


def attempt_for(
    containers: ContainerFactory, node: int, flagged: bool
) -> tuple[Any, dict[str, str]]:
    skipped: dict[str, str] = {}

    def attempt(values: Sequence[str]) -> str | None:
        problems = []
        for value in values:
            mode, flags = ("MPOL_BIND", [value]) if flagged else (value, [])
            if not host_allows(mode, flags, node):
                skipped[value] = "this kernel refuses it to set_mempolicy(2) itself"
                continue
            result = run_policy(containers, mode, flags, node)
            if result.exit_code != 0:
                problems.append(f"exit {result.exit_code}: {result.stderr.strip()[-200:]}")
                continue
            want = expected(mode, flags, node) if mode in SHOWN else None
            got = _policy_field(result.stdout.strip().splitlines()[0])
            if want is not None and got != want:
                problems.append(f"numa_maps shows {got!r}, not {want!r}")
        return "; ".join(problems) or None

    return attempt, skipped


@pytest.mark.spec("features-linux.memorypolicy.1", "config-linux.memory-policy.apply-memory-policy")
def test_every_declared_memory_policy_mode_is_applied(containers: ContainerFactory) -> None:
    policy = memory_policies(containers)
    modes = policy.get("modes")
    if not isinstance(modes, list) or not modes:
        pytest.skip("features memoryPolicy declares no modes")
    node = first_node()
    attempt, _ = attempt_for(containers, node, flagged=False)
    # One container per value: one config holds one policy.
    found = {m: why for m in modes if (why := attempt([m])) is not None}
    assert_none(found, "declared memory policy modes that were not applied")
    # The control: a mode no spec defines is refused, so the runtime reads linux.memoryPolicy.
    bogus = run_policy(containers, "MPOL_BOGUS", [], node)
    assert bogus.exit_code != 0, "an undefined memoryPolicy.mode MPOL_BOGUS was accepted too"


@pytest.mark.spec("features-linux.memorypolicy.2", "config-linux.memory-policy.apply-memory-policy")
def test_every_declared_memory_policy_flag_is_applied(containers: ContainerFactory) -> None:
    policy = memory_policies(containers)
    flags = policy.get("flags")
    if not isinstance(flags, list) or not flags:
        pytest.skip("features memoryPolicy declares no flags")
    node = first_node()
    attempt, _ = attempt_for(containers, node, flagged=True)
    found = {f: why for f in flags if (why := attempt([f])) is not None}
    assert_none(found, "declared memory policy flags that were not applied (with MPOL_BIND)")
    bogus = run_policy(containers, "MPOL_BIND", ["MPOL_F_BOGUS"], node)
    assert bogus.exit_code != 0, "an undefined memoryPolicy flag MPOL_F_BOGUS was accepted too"
