"""Mutants that get devices, network devices and the generic create/operation rules wrong
(config-linux.md "Devices", "Default Devices", "Network Devices"; runtime-linux.md "Dev symbolic
links"; runtime.md "Errors", config.md "Extensibility").

Host safety: the device mutants only ever bind the host's /dev/null or mount an empty tmpfs
inside the container's own /dev. The network-device mutants act only in the container's network
namespace or, for "moved back", in the runtime's own, and only when that is not the machine's
(the suite runs the runtime inside a sandbox namespace for these tests; the mutant checks).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from mutants import REAL, Call, config, verb


def bundle_config(bundle: str) -> dict:
    data = json.loads(Path(bundle, "config.json").read_text())
    assert isinstance(data, dict)
    return data


def _linux(cfg: dict) -> dict:
    linux = cfg.setdefault("linux", {})
    assert isinstance(linux, dict)
    return linux


# --- default devices and dev links ------------------------------------------------------------


@config("default-device-wrong")
def default_device_wrong(cfg: dict, call: Call) -> None:
    # A runtime that makes /dev/full the null device (a wrong minor: 1:3 for 1:7).
    cfg.setdefault("mounts", []).append(
        {"destination": "/dev/full", "type": "bind", "source": "/dev/null", "options": ["bind"]}
    )


@config("dev-symlinks-missing")
def dev_symlinks_missing(cfg: dict, call: Call) -> None:
    # /dev/fd taken by a directory before the runtime makes its links (it tolerates EEXIST).
    cfg.setdefault("mounts", []).append(
        {"destination": "/dev/fd", "type": "tmpfs", "source": "tmpfs", "options": ["size=4k"]}
    )


@config("device-numbers-wrong")
def device_numbers_wrong(cfg: dict, call: Call) -> None:
    for device in _linux(cfg).get("devices", []):
        if device.get("type") != "p":
            device["minor"] = device.get("minor", 0) + 1


@config("device-mode-ignored")
def device_mode_ignored(cfg: dict, call: Call) -> None:
    for device in _linux(cfg).get("devices", []):
        device["fileMode"] = 0o666


@config("device-owner-ignored")
def device_owner_ignored(cfg: dict, call: Call) -> None:
    for device in _linux(cfg).get("devices", []):
        device.pop("uid", None)
        device.pop("gid", None)


@config("device-type-wrong")
def device_type_wrong(cfg: dict, call: Call) -> None:
    # Every node made a character device (a FIFO as the null device).
    for device in _linux(cfg).get("devices", []):
        if device.get("type") == "p":
            device.update(major=1, minor=3)
        device["type"] = "c"


@config("device-existing-dropped")
def device_existing_dropped(cfg: dict, call: Call) -> None:
    # A runtime that skips a device whose path is taken instead of reporting the clash.
    root = Path(call_bundle(call), cfg.get("root", {}).get("path", "rootfs"))
    linux = _linux(cfg)
    linux["devices"] = [
        d for d in linux.get("devices", [])
        if not (root / str(d.get("path", "")).lstrip("/")).is_file()
    ]  # fmt: skip


def call_bundle(call: Call) -> str:
    rest = call.rest
    for i, arg in enumerate(rest):
        if arg in ("--bundle", "-b") and i + 1 < len(rest):
            return rest[i + 1]
    return os.getcwd()


# --- network devices ------------------------------------------------------------------------


def _net_devices(cfg: dict) -> dict:
    devices = _linux(cfg).get("netDevices") or {}
    assert isinstance(devices, dict)
    return devices


@config("netdev-ignored")
def netdev_ignored(cfg: dict, call: Call) -> None:
    _linux(cfg).pop("netDevices", None)


@config("netdev-not-renamed")
def netdev_not_renamed(cfg: dict, call: Call) -> None:
    for entry in _net_devices(cfg).values():
        entry.pop("name", None)


@config("netdev-template-refused")
def netdev_template_refused(cfg: dict, call: Call) -> None:
    # A runtime that passes a '%d' template on mangled: the kernel refuses two of them.
    for entry in _net_devices(cfg).values():
        if "%d" in str(entry.get("name", "")):
            entry["name"] = entry["name"].replace("%d", "%d%d")


@config("netdev-missing-dropped")
def netdev_missing_dropped(cfg: dict, call: Call) -> None:
    # A runtime that skips a device its namespace lacks instead of failing the create.
    kept = {}
    for name, entry in _net_devices(cfg).items():
        try:
            socket.if_nametoindex(name)  # in the namespace the runtime runs in
        except OSError:
            continue
        kept[name] = entry
    if _net_devices(cfg):
        _linux(cfg)["netDevices"] = kept


@config("netdev-clash-keeps-name")
def netdev_clash_keeps_name(cfg: dict, call: Call) -> None:
    # A runtime that, when the new name is taken (a new namespace has lo), keeps the old one.
    for entry in _net_devices(cfg).values():
        if entry.get("name") == "lo":
            entry.pop("name")


def _machine_netns() -> int | None:
    """The inode of the machine's network namespace: pid 1's, or (where pid 1 cannot be
    inspected) the caller's, the suite, which runs the runtime through ``nsenter --net``."""
    for pid in (1, os.getppid()):
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
    return None


def _own_netns_is_the_machines() -> bool:
    machine = _machine_netns()
    return machine is None or os.stat("/proc/self/ns/net").st_ino == machine


def _state_pid(call: Call) -> int | None:
    done = subprocess.run([REAL, *call.globals, "state", call.container_id],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode:
        return None
    pid = json.loads(done.stdout).get("pid")
    return pid if isinstance(pid, int) and pid > 0 else None


def _ip_in(netns: str, *args: str) -> None:
    machine = _machine_netns()
    if machine is None or os.stat(netns).st_ino == machine:
        return  # never the machine's own namespace (nor one we cannot tell from it)
    subprocess.run(["nsenter", f"--net={netns}", "--", "ip", *args], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _after_create(call: Call, action: tuple[str, ...]) -> int | None:
    if call.verb != "create":
        return None
    code = call.real()
    cfg = bundle_config(call_bundle(call))
    pid = _state_pid(call) if code == 0 else None
    if pid is not None:
        for host, entry in _net_devices(cfg).items():
            name = (entry or {}).get("name") or host
            if "%" not in name:
                _ip_in(f"/proc/{pid}/ns/net", *action, "dev", name)
    return code


@verb("netdev-not-up")
def netdev_not_up(call: Call) -> int | None:
    return _after_create(call, ("link", "set", "down"))


@verb("netdev-addresses-flushed")
def netdev_addresses_flushed(call: Call) -> int | None:
    return _after_create(call, ("addr", "flush"))


@verb("netdev-moved-back")
def netdev_moved_back(call: Call) -> int | None:
    # A runtime that hands the devices back to its own namespace when the container goes.
    if call.verb not in ("kill", "delete") or _own_netns_is_the_machines():
        return None
    try:
        cfg = bundle_config(_bundle_from_state(call))
    except (OSError, ValueError):
        return None
    pid = _state_pid(call)
    joined = [ns.get("path") for ns in _linux(cfg).get("namespaces", [])
              if ns.get("type") == "network" and ns.get("path")]  # fmt: skip
    netns = joined[0] if joined else (f"/proc/{pid}/ns/net" if pid else None)
    if netns and os.path.exists(netns):
        for host, entry in _net_devices(cfg).items():
            name = (entry or {}).get("name") or host
            if "%" not in name:
                _ip_in(netns, "link", "set", "dev", name, "netns", str(os.getpid()))
                _ip_in("/proc/self/ns/net", "link", "set", "dev", name, "name", host)
    return None


def _bundle_from_state(call: Call) -> str:
    done = subprocess.run([REAL, *call.globals, "state", call.container_id],
                          capture_output=True, text=True, check=True)  # fmt: skip
    bundle = json.loads(done.stdout).get("bundle")
    if not isinstance(bundle, str):
        raise ValueError("no bundle in state")
    return bundle


@config("devpts-missing")
def devpts_missing(cfg: dict, call: Call) -> None:
    # A runtime that gives the container no devpts of its own.
    cfg["mounts"] = [m for m in cfg.get("mounts", []) if m.get("destination") != "/dev/pts"]


# --- create applies the config; errors, warnings, unknown input ------------------------------


@config("sysctl-dropped")
def sysctl_dropped(cfg: dict, call: Call) -> None:
    _linux(cfg).pop("sysctl", None)


@verb("failed-create-leaves-cgroup")
def failed_create_leaves_cgroup(call: Call) -> int | None:
    # What a runtime that forgets its rollback on a late failure leaves behind.
    if call.verb != "create":
        return None
    code = call.real()
    if code != 0 and call.container_id:
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/cgroup/pids/{call.container_id}").mkdir()
    return code


@verb("warnings-fatal")
def warnings_fatal(call: Call) -> int | None:
    # A runtime that turns what it logs as a warning into a failed create.
    if call.verb != "create":
        return None
    # The container inherits create's stderr: a file, not a pipe that would stay open.
    with tempfile.TemporaryFile("w+") as err:
        code = subprocess.call([REAL, *call.args], stderr=err)
        err.seek(0)
        text = err.read()
    sys.stderr.write(text)
    # Only a warning about a capability (runc warns about other things on every create here).
    lines = [line for line in text.lower().splitlines() if "warn" in line]
    if code == 0 and any("capabilit" in line for line in lines):
        call.real_verb("delete", "--force", call.container_id)
        return 1
    return code


SPEC_TOP_LEVEL = frozenset(
    {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
     "annotations", "linux", "solaris", "windows", "vm", "zos"}
)  # fmt: skip


@verb("unknown-properties-refused")
def unknown_properties_refused(call: Call) -> int | None:
    if call.verb not in ("create", "run"):
        return None
    cfg = bundle_config(call_bundle(call))
    unknown = sorted(set(cfg) - SPEC_TOP_LEVEL)
    if unknown:
        sys.stderr.write(f"unknown properties {unknown}\n")
        return 1
    return None


@verb("unknown-annotations-refused")
def unknown_annotations_refused(call: Call) -> int | None:
    if call.verb not in ("create", "run"):
        return None
    keys = (bundle_config(call_bundle(call)).get("annotations") or {}).keys()
    if any(not key.startswith("org.opencontainers.") for key in keys):
        sys.stderr.write("unknown annotation keys\n")
        return 1
    return None


NSENTER_FLAGS = {"network": "--net", "ipc": "--ipc", "uts": "--uts"}


@config("ns-path-type-unchecked")
def ns_path_type_unchecked(cfg: dict, call: Call) -> None:
    # A runtime that, for a path that is no namespace of the type, makes a new one instead.
    for ns in _linux(cfg).get("namespaces", []):
        path, flag = ns.get("path"), NSENTER_FLAGS.get(ns.get("type", ""))
        if path and flag:
            # setns(2) with the type given checks it; the child exits at once.
            probe = subprocess.run(["nsenter", f"{flag}={path}", "--", "true"],
                                   capture_output=True, check=False)  # fmt: skip
            if probe.returncode != 0:
                ns.pop("path")


@verb("delete-removes-cgroup-parent")
def delete_removes_cgroup_parent(call: Call) -> int | None:
    # A runtime that also removes the (empty) parent of the container's cgroup at delete.
    if call.verb != "delete":
        return None
    try:
        cfg = bundle_config(_bundle_from_state(call))
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    code = call.real()
    parent = os.path.dirname(str(_linux(cfg).get("cgroupsPath", "")).rstrip("/"))
    if code == 0 and parent.strip("/"):
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (hierarchy / parent.lstrip("/")).rmdir()  # only an empty cgroup goes
    return code
