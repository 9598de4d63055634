"""``bulkhead-engine``: docker's command line over the engine, for any OCI runtime.

The only place that prints errors and decides exit codes: an EngineError is one line on stderr
and exit 125 (docker's code for "the engine failed"); ``run`` in the foreground and ``exec``
exit with the container process's own code. Each verb lives in its own module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import DEFAULT_EXEC_ROOT, DEFAULT_ROOT, Layout
from reference_runtime.engine.lifecycle import Settings

ENGINE_FAILED = 125
PROG = "bulkhead-engine"


class _Parser(argparse.ArgumentParser):
    """Usage errors as docker gives them: one line, exit 125 (argparse's own is two lines and 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ENGINE_FAILED, f"{PROG}: {self.prog.removeprefix(PROG).strip() or 'usage'}: "
                                 f"{message} (see {self.prog} --help)\n")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    from reference_runtime.engine.cli import containers, image, run, system

    p = _Parser(
        prog=PROG,
        description="A docker-like engine over any OCI runtime: images, an overlay2 store, "
        "container files, a bridge network and published ports (docs/engine.md).",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help=f"images, layers and containers (default {DEFAULT_ROOT})",
    )
    p.add_argument(
        "--exec-root",
        type=Path,
        default=DEFAULT_EXEC_ROOT,
        help=f"network namespaces, bundles, runtime state (default {DEFAULT_EXEC_ROOT})",
    )
    p.add_argument(
        "--runtime",
        default="runc",
        help="the default OCI runtime: runc, crun, reference or a path (default runc)",
    )
    p.add_argument(
        "--cgroup-parent",
        default="/bulkhead",
        help="containers' cgroups go under this path (default /bulkhead)",
    )
    p.add_argument("--subnet", default="172.30.0.0/16",
                   help="the bridge network's subnet (default 172.30.0.0/16)")  # fmt: skip
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in (run, containers, image, system):
        module.register(verbs)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(
        Layout(args.root.absolute(), args.exec_root.absolute()),
        runtime=args.runtime,
        cgroup_parent=args.cgroup_parent,
        subnet=args.subnet,
    )
    try:
        settings.layout.ensure()
        code: int = args.handler(settings, args)
    except EngineError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ENGINE_FAILED
    except OSError as exc:
        # A step without its own message (a full disk under the root, say): still one line.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{PROG}: failed to {args.verb}{where}: {exc.strerror or exc}", file=sys.stderr)
        return ENGINE_FAILED
    except KeyboardInterrupt:
        return 130
    return code
