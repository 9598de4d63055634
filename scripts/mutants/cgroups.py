"""Mutants that get cgroups wrong: limits not written, the container in the wrong cgroup, the
device rules reversed or widened, a freezer that stops only the init, no cgroup namespace.

All stay safe for the host: a cgroup path keeps the container's id (the sentinel finds it and
the real runtime removes it as the leaf it made), a limit is only dropped or raised as far as
the suite's own hogs (32 MiB) allow, and a widened device rule widens only the access to the
one device the suite's device tests allow (which they open without writing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from mutants import REAL, Call, config, verb


def _resources(cfg: dict) -> dict:
    resources = cfg.setdefault("linux", {}).setdefault("resources", {})
    assert isinstance(resources, dict)
    return resources


@config("pids-limit-dropped")
def pids_limit_dropped(cfg: dict, call: Call) -> None:
    _resources(cfg).pop("pids", None)


@config("memory-limit-raised")
def memory_limit_raised(cfg: dict, call: Call) -> None:
    # A runtime that writes the limit in the wrong unit (KiB for bytes): 1024 times as much.
    memory = _resources(cfg).get("memory") or {}
    for key in ("limit", "swap", "reservation"):
        if isinstance(memory.get(key), int) and memory[key] > 0:
            memory[key] *= 1024


@config("memory-knobs-dropped")
def memory_knobs_dropped(cfg: dict, call: Call) -> None:
    # The memory settings that are not limits (config-linux.md, Memory): swappiness, OOM killer.
    memory = _resources(cfg).get("memory") or {}
    memory.pop("swappiness", None)
    memory.pop("disableOOMKiller", None)


@config("cpu-limits-dropped")
def cpu_limits_dropped(cfg: dict, call: Call) -> None:
    cpu = _resources(cfg).get("cpu") or {}
    for key in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus"):
        cpu.pop(key, None)


@config("blkio-dropped")
def blkio_dropped(cfg: dict, call: Call) -> None:
    _resources(cfg).pop("blockIO", None)


@config("hugepages-dropped")
def hugepages_dropped(cfg: dict, call: Call) -> None:
    # A runtime that skips a controller it cannot find instead of saying so.
    _resources(cfg).pop("hugepageLimits", None)


@config("unknown-unified-dropped")
def unknown_unified_dropped(cfg: dict, call: Call) -> None:
    unified = _resources(cfg).get("unified")
    if isinstance(unified, dict):
        for key in [k for k in unified if k.startswith("nosuchctl.")]:
            del unified[key]
        if not unified:
            _resources(cfg).pop("unified")


@config("cgroups-path-per-container")
def cgroups_path_per_container(cfg: dict, call: Call) -> None:
    # A runtime that adds the container's id to the path it was given: each container gets a
    # cgroup of its own wherever the config pointed (still a leaf named after the container).
    linux = cfg.setdefault("linux", {})
    path = linux.get("cgroupsPath")
    if isinstance(path, str) and path:
        linux["cgroupsPath"] = f"{path.rstrip('/')}-{call.container_id}"


@config("device-rules-reversed")
def device_rules_reversed(cfg: dict, call: Call) -> None:
    devices = _resources(cfg).get("devices")
    if isinstance(devices, list):
        devices.reverse()


@config("device-allowed-by-default")
def device_allowed_by_default(cfg: dict, call: Call) -> None:
    # A runtime whose own default allow-list is wider than the spec's default devices: here
    # by the one device the suite's device tests use (opened there, never written).
    devices = _resources(cfg).setdefault("devices", [])
    devices.append({"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"})


@config("device-access-widened")
def device_access_widened(cfg: dict, call: Call) -> None:
    for rule in _resources(cfg).get("devices") or []:
        if rule.get("allow") and rule.get("major") == 1 and rule.get("minor") == 11:
            rule["access"] = "rwm"


@config("no-cgroup-ns")
def no_cgroup_ns(cfg: dict, call: Call) -> None:
    linux = cfg.setdefault("linux", {})
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != "cgroup"]


def _init_pid(call: Call) -> int:
    done = subprocess.run([REAL, *call.globals, "state", call.container_id],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(json.loads(done.stdout)["pid"])


@verb("pause-stops-init-only")
def pause_stops_init_only(call: Call) -> int | None:
    # A freezer that stops the init by a signal (its children run on) and calls it paused.
    if call.verb == "pause":
        os.kill(_init_pid(call), signal.SIGSTOP)
        return 0
    if call.verb == "resume":
        os.kill(_init_pid(call), signal.SIGCONT)
        return 0
    if call.verb == "state":
        done = subprocess.run([REAL, *call.args], capture_output=True, text=True, check=False)
        state = json.loads(done.stdout) if done.returncode == 0 else None
        if state and state.get("pid"):
            with open(f"/proc/{state['pid']}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "T":
                    state["status"] = "paused"
            print(json.dumps(state))
            return 0
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode
    return None


@verb("update-always-succeeds")
def update_always_succeeds(call: Call) -> int | None:
    # A runtime that reports success for an update it did not make.
    if call.verb == "update" and "--help" not in call.rest:
        call.real()
        return 0
    return None
