"""The verbs on existing containers: ps, logs, inspect, port, exec, stop, kill, rm."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from reference_runtime.engine import gc, lifecycle, views
from reference_runtime.engine.containers import ContainerStore
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.lifecycle import Settings
from reference_runtime.engine.runtime import OciRuntime


def register(verbs: Any) -> None:
    p = verbs.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.set_defaults(handler=ps)

    p = verbs.add_parser("logs", help="what a container printed")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("container")
    p.set_defaults(handler=logs)

    p = verbs.add_parser("inspect", help="a container's record as JSON")
    p.add_argument("containers", nargs="+", metavar="container")
    p.set_defaults(handler=inspect)

    p = verbs.add_parser("port", help="where a container's ports are published")
    p.add_argument("container")
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]")
    p.set_defaults(handler=port)

    p = verbs.add_parser("exec", help="run a command in a running container")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(handler=exec_)

    p = verbs.add_parser("stop", help="SIGTERM, then SIGKILL after a grace period")
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("containers", nargs="+", metavar="container")
    p.set_defaults(handler=stop)

    p = verbs.add_parser("kill", help="send a signal")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+", metavar="container")
    p.set_defaults(handler=kill)

    p = verbs.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    p.add_argument("containers", nargs="+", metavar="container")
    p.set_defaults(handler=rm)


def _collected(settings: Settings) -> ContainerStore:
    with settings.layout.locked():
        gc.collect(settings)
    return ContainerStore(settings.layout)


def ps(settings: Settings, args: argparse.Namespace) -> int:
    rows = [c for c in _collected(settings).all() if args.all or c.running]
    if args.quiet:
        for c in rows:
            print(c.id[:12])
    else:
        views.ps_table(rows, sys.stdout)
    return 0


def logs(settings: Settings, args: argparse.Namespace) -> int:
    container = ContainerStore(settings.layout).get(args.container)
    follow = None
    if args.follow:
        follow = lambda: lifecycle.monitor_alive(container)  # noqa: E731
    views.print_logs(container.log_path, follow=follow)
    return 0


def inspect(settings: Settings, args: argparse.Namespace) -> int:
    store = _collected(settings)
    documents = [views.inspect_document(settings.layout, store.get(ref)) for ref in args.containers]
    json.dump(documents, sys.stdout, indent=4)
    sys.stdout.write("\n")
    return 0


def port(settings: Settings, args: argparse.Namespace) -> int:
    """docker port's output: "80/tcp -> 127.0.0.1:41729", or only the address for one port."""
    container = ContainerStore(settings.layout).get(args.container)
    ports = container.record.get("NetworkSettings", {}).get("Ports") or {}
    if args.port:
        key = args.port if "/" in args.port else f"{args.port}/tcp"
        if key not in ports:
            raise EngineError(f"failed to find port {key} of container {container.name}: "
                              "not published")  # fmt: skip
        for b in ports[key]:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key, bound in ports.items():
        for b in bound:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0


def exec_(settings: Settings, args: argparse.Namespace) -> int:
    container = ContainerStore(settings.layout).get(args.container)
    if not args.cmd:
        raise EngineError("failed to exec: no command given")
    if not container.running:
        raise EngineError(f"failed to exec in container {container.name}: it is not running")
    runtime = OciRuntime.open(str(container.extra["Runtime"]), settings.layout)
    config = container.record["Config"]
    argv = runtime.exec_argv(container.id, args.cmd, config["Env"], config["WorkingDir"])
    # The process's stdio is this command's own, as docker exec's without -i/-t.
    return subprocess.run(argv, check=False).returncode


def stop(settings: Settings, args: argparse.Namespace) -> int:
    store = ContainerStore(settings.layout)
    for ref in args.containers:
        container = store.get(ref)
        lifecycle.stop(settings, container, args.time)
        print(ref)
    return 0


def kill(settings: Settings, args: argparse.Namespace) -> int:
    store = ContainerStore(settings.layout)
    for ref in args.containers:
        lifecycle.signal(settings, store.get(ref), args.signal.upper().removeprefix("SIG"))
        print(ref)
    return 0


def rm(settings: Settings, args: argparse.Namespace) -> int:
    failed = 0
    for ref in args.containers:
        try:
            lifecycle.remove(settings, ref, force=args.force)
        except EngineError as exc:
            print(f"bulkhead-engine: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(ref)
    return 125 if failed else 0
