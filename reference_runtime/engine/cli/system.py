"""``info`` and ``network prune``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
from typing import Any

from reference_runtime.engine import gc, lifecycle, views
from reference_runtime.engine.containers import ContainerStore
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.lifecycle import Settings
from reference_runtime.engine.runtime import resolve_binary

KNOWN_RUNTIMES = ("runc", "crun", "reference")


def register(verbs: Any) -> None:
    p = verbs.add_parser("info", help="the engine and the host it runs on")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=info)
    p = verbs.add_parser("network", help="the engine's bridge network")
    sub = p.add_subparsers(dest="network_verb", required=True, metavar="VERB")
    q = sub.add_parser("prune", help="remove the bridge and the engine's network namespace "
                                     "when no container uses them")  # fmt: skip
    q.set_defaults(handler=network_prune)


def _runtimes() -> dict[str, str]:
    found = {}
    for name in KNOWN_RUNTIMES:
        try:
            found[name] = str(resolve_binary(name))
        except EngineError:
            continue
    return found


def info(settings: Settings, args: argparse.Namespace) -> int:
    layout = settings.layout
    with layout.locked():
        gc.collect(settings)
    everything = ContainerStore(layout).all()
    from reference_runtime.engine.images.store import ImageStore

    runtimes = _runtimes()
    backing = views.backing_filesystem(layout.root)
    document: dict[str, object] = {
        "Containers": len(everything),
        "ContainersRunning": sum(c.running for c in everything),
        "ContainersStopped": sum(not c.running for c in everything),
        "Images": len(ImageStore(layout).list()),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing]],
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": views.cgroup_version(),
        "CgroupParent": settings.cgroup_parent,
        "Runtimes": runtimes,
        "DefaultRuntime": settings.runtime,
        "DockerRootDir": str(layout.root),
        "ExecRoot": str(layout.exec_root),
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Bridge": {"Subnet": settings.subnet, "Namespace": str(layout.netns_dir / "engine")},
    }
    if args.json:
        json.dump(document, sys.stdout, indent=4)
        sys.stdout.write("\n")
        return 0
    lines = [
        f"Containers: {document['Containers']}",
        f" Running: {document['ContainersRunning']}",
        f" Stopped: {document['ContainersStopped']}",
        f"Images: {document['Images']}",
        "Storage Driver: overlay2",
        f" Backing Filesystem: {backing}",
        "Logging Driver: json-file",
        "Cgroup Driver: cgroupfs",
        f"Cgroup Version: {document['CgroupVersion']}",
        "Runtimes: " + " ".join(runtimes),
        f"Default Runtime: {settings.runtime}",
        f"Kernel Version: {document['KernelVersion']}",
        f"Operating System: {document['OperatingSystem']}",
        f"CPUs: {document['NCPU']}",
        f"Root Dir: {layout.root}",
        f"Exec Root: {layout.exec_root}",
        f"Bridge: {settings.subnet} in {layout.netns_dir / 'engine'}",
    ]
    print("\n".join(lines))
    return 0


def _os_name() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f.read().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def network_prune(settings: Settings, args: argparse.Namespace) -> int:
    with settings.layout.locked():
        gc.collect(settings)
        attached = [c.name for c in ContainerStore(settings.layout).all() if c.running]
        if attached:
            raise EngineError("failed to prune the network: containers still run: "
                              + ", ".join(attached))  # fmt: skip
        lifecycle.network(settings).teardown()
    shutil.rmtree(settings.layout.netns_dir, ignore_errors=True)
    return 0
