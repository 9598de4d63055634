"""Entry point: global options, the verb, and the one place errors become exit codes.

A refusal prints ``failed to <verb> <object>: <reason>`` (design.md §4.9) on one line and exits
1; bad usage exits 2 (runc and Go's flag package use 1 for both; any non-zero is a refusal for
runtime.md). No Python traceback ever reaches the user, unless ``--debug`` asks for one.
"""

from __future__ import annotations

import os
import sys

from reference_runtime.cli.args import FLAG, VALUE, parse
from reference_runtime.cli.log import Log
from reference_runtime.errors import RuntimeFailure, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.system import System

VERSION = "0.1.0"
SPEC_VERSION = "1.3.0"
DEFAULT_ROOT = "/run/bulkhead-runtime"

GLOBAL_OPTIONS = {
    "root": VALUE, "log": VALUE, "log-format": VALUE, "debug": FLAG, "systemd-cgroup": FLAG,
    "criu": VALUE, "rootless": VALUE, "help": FLAG, "version": FLAG,
}  # fmt: skip

# verb → module under reference_runtime.cli (imported only for that verb)
VERBS = {
    "create": "create", "start": "start", "state": "state", "kill": "kill",
    "delete": "delete", "run": "run", "exec": "exec_", "features": "features",
    "spec": "spec", "list": "list_", "ps": "ps", "pause": "pause", "resume": "pause",
}  # fmt: skip

USAGE = """usage: bulkhead-runtime [global options] COMMAND [options] [ID] [ARGS...]

An OCI runtime (runtime-spec {spec}) with runc's command line.

commands: create start run state kill delete exec ps list pause resume features spec

global options:
  --root DIR            state directory (default {root})
  --log FILE            also write messages to FILE
  --log-format FORMAT   text (default) or json
  --debug               describe each step of the plan
  --systemd-cgroup      not supported (refused)
  --version             print the version
"""


class Globals:
    """What every verb gets: where state lives, how to report, the kernel boundary."""

    __slots__ = ("debug", "log", "object", "root", "verb")

    def __init__(self, root: str, log: Log, debug: bool) -> None:
        self.root = root
        self.log = log
        self.debug = debug
        self.verb = ""
        self.object = ""  # what the verb acts on, for error messages ("container abc")

    @property
    def system(self) -> System:
        from reference_runtime.linux.system import SYSTEM

        return SYSTEM

    def store(self) -> Store:
        from reference_runtime.lifecycle.store import Store

        return Store(self.root)


def leave(code: int | None) -> None:
    """Exits as ``sys.exit(code)`` would, without the interpreter's teardown (each module and
    object freed one by one: ~5 ms here, launcher.py). The runtime registers no atexit handler
    and writes its own files and messages with os.write; only Python's stdout/stderr buffers
    (``print``) are flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost start-up time
            stream.flush()
        except (OSError, ValueError):
            pass  # tolerated: a closed pipe or stream; the exit code still says what happened
    os._exit(int(code or 0) & 0xFF)


def _print(text: str) -> None:
    os.write(1, text.encode())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    log = Log(None, "text", False)
    try:
        parsed = parse(args, GLOBAL_OPTIONS, aliases={"v": "version", "h": "help"},
                       stop_at_positional=True)  # fmt: skip
    except UsageError as exc:
        log.error(f"failed to parse the command line: {exc}")
        return 2
    fmt = parsed.value("log-format") or "text"
    log = Log(parsed.value("log"), fmt, parsed.flag("debug"))
    if fmt not in ("text", "json"):
        log.error(f"failed to parse the command line: --log-format {fmt}: use text or json")
        return 2
    if parsed.flag("version"):
        _print(f"bulkhead-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
        return 0
    if parsed.flag("help") or not parsed.positionals:
        _print(USAGE.format(spec=SPEC_VERSION, root=DEFAULT_ROOT))
        return 0 if parsed.flag("help") else 2
    verb, rest = parsed.positionals[0], parsed.positionals[1:]
    g = Globals(os.path.abspath(parsed.value("root") or DEFAULT_ROOT), log, parsed.flag("debug"))
    g.verb = verb
    if parsed.flag("systemd-cgroup"):
        log.error(f"failed to {verb}: --systemd-cgroup: the systemd cgroup driver is not "
                  "supported; use cgroupfs paths (the default)")  # fmt: skip
        return 1
    module_name = VERBS.get(verb)
    if module_name is None:
        log.error(f"failed to run {verb!r}: no such command (try --help)")
        return 2
    try:
        module = __import__(f"reference_runtime.cli.{module_name}", fromlist=["run"])
        return int(module.run(g, rest))
    except UsageError as exc:
        log.error(f"failed to {verb} {g.object or 'container'}: {exc}".replace("  ", " "))
        return 2
    except (RuntimeFailure, OSError) as exc:
        log.error(f"failed to {verb} {g.object or 'container'}: {exc}")
        return 1
    except KeyboardInterrupt:
        log.error(f"failed to {verb} {g.object or 'container'}: interrupted")
        return 130
    except Exception as exc:  # a bug: still one line, the type says where to look
        if g.debug:
            import traceback

            traceback.print_exc()
        log.error(f"failed to {verb} {g.object or 'container'}: internal error: "
                  f"{type(exc).__name__}: {exc}")  # fmt: skip
        return 1
