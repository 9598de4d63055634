"""``run``: make a container from an image and start it (docker run's options that matter here)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from typing import Any

from reference_runtime.engine import lifecycle, views
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.lifecycle import RunOptions, Settings
from reference_runtime.engine.network.endpoint import MODES


def register(verbs: Any) -> None:
    p = verbs.add_parser("run", help="create and start a container")
    p.add_argument("-d", "--detach", action="store_true", help="print the id and return")
    p.add_argument("--name")
    p.add_argument("--hostname")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[127.0.0.1:]HOST:CONTAINER[/PROTO]",
                   help="publish a port on the host's loopback")  # fmt: skip
    p.add_argument(
        "-P",
        "--publish-all",
        action="store_true",
        help="publish every port the image exposes on an ephemeral loopback port",
    )
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--runtime", dest="run_runtime", metavar="RUNTIME")
    p.add_argument("--network", default="bridge", choices=MODES)
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--memory", "-m")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("image")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(handler=handle)


def handle(settings: Settings, args: argparse.Namespace) -> int:
    opts = RunOptions(
        image=args.image, cmd=list(args.cmd), name=args.name, hostname=args.hostname,
        env=list(args.env), publish=list(args.publish), publish_all=args.publish_all,
        auto_remove=args.rm, runtime=args.run_runtime, network=args.network,
        read_only=args.read_only, memory=args.memory, pids_limit=args.pids_limit,
    )  # fmt: skip
    container, status = lifecycle.run(settings, opts, foreground=not args.detach)
    if status is None:
        print(container.id)
        return 0
    return _attach(settings, container, status)


def _attach(settings: Settings, container: Any, status: Any) -> int:
    """Streams the log until the monitor reports the exit; Ctrl-C and SIGTERM go to the
    container (docker's --sig-proxy), which then exits in its own time."""

    def forward(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        # The container may have ended meanwhile: then there is no one to tell.
        with contextlib.suppress(EngineError):
            lifecycle.signal(settings, container, name)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    ended: list[str] = []

    def running() -> bool:
        if not ended:
            import select

            if select.select([status], [], [], 0)[0]:
                ended.append(status.readline().strip())
        return not ended

    views.print_logs(container.log_path, follow=running, wake=status.fileno())
    status.close()
    line = ended[0] if ended else ""
    if line.startswith("exit "):
        return int(line.split()[1])
    print(f"bulkhead-engine: the monitor of {container.id[:12]} ended without an exit code",
          file=sys.stderr)  # fmt: skip
    return 125
