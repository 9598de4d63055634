"""The mutants of scripts/broken-runtime, one module per area, each registering its own.

A mutant breaks one thing in a real runtime: the config the runtime is given (``@config``: a
function changing the parsed config.json of ``create``/``run`` in place), the behaviour of a verb
(``@verb``: a function given the intercepted call, returning the exit code, or None to let the
real runtime handle it unchanged), or both under one name (a config change that needs cleaning
up on ``delete``). ``broken-runtime --list`` prints every registered name, so
``scripts/mutation-check`` never keeps a list of its own.

Every mutant stays safe for the host: none widens what the container may write outside itself,
and a mutant that removes an isolation the suite's tests then probe must leave the host as the
tests find it (the tests check before they act; see conformance/).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REAL = os.environ.get("BULKHEAD_REAL_RUNTIME", "runc")
# Verb options that take a separate value (runc's create, run, exec, kill, delete, ps).
VALUE_OPTIONS = frozenset(
    {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds", "--process", "-p",
     "--env", "-e", "--cwd", "--user", "-u", "--additional-gids", "-g", "--cap", "-c",
     "--process-label", "--apparmor", "--format", "-f", "--cgroup"}
)  # fmt: skip


@dataclass
class Call:
    """One invocation of the broken runtime: ``args`` as given, the verb and what follows it."""

    args: list[str]
    index: int | None
    verb: str | None

    @property
    def rest(self) -> list[str]:
        return self.args[self.index + 1 :] if self.index is not None else []

    @property
    def globals(self) -> list[str]:
        return self.args[: self.index] if self.index is not None else list(self.args)

    @property
    def container_id(self) -> str:
        """The id: the verb's first positional argument (runc's shapes: ``kill ID [SIGNAL]``,
        ``exec [OPTIONS] ID ARGS...``, ``create --bundle B ID``)."""
        rest, i = self.rest, 0
        while i < len(rest):
            arg = rest[i]
            if arg == "--":
                return rest[i + 1] if i + 1 < len(rest) else ""
            if not arg.startswith("-"):
                return arg
            i += 2 if arg in VALUE_OPTIONS else 1
        return ""

    def real(self, args: list[str] | None = None, **kw: object) -> int:
        # close_fds=False: the real runtime gets every descriptor the wrapper was started with,
        # as it would without the wrapper (--preserve-fds, and the leaks the suite plants).
        kw.setdefault("close_fds", False)
        return subprocess.call([REAL, *(self.args if args is None else args)], **kw)  # type: ignore[arg-type]

    def real_verb(self, verb: str, *rest: str) -> int:
        return self.real([*self.globals, verb, *rest])


ConfigMutant = Callable[[dict, Call], None]
VerbMutant = Callable[[Call], "int | None"]
CONFIG: dict[str, ConfigMutant] = {}
VERB: dict[str, VerbMutant] = {}
# Mutants that are only safe with some real runtimes: name -> runtimes allowed.
ONLY_WITH: dict[str, tuple[str, ...]] = {}


def config(name: str, *, only_with: tuple[str, ...] = ()) -> Callable[[ConfigMutant], ConfigMutant]:
    def register(fn: ConfigMutant) -> ConfigMutant:
        assert name not in CONFIG, f"config mutant {name} registered twice"
        CONFIG[name] = fn
        if only_with:
            ONLY_WITH[name] = only_with
        return fn

    return register


def verb(name: str, *, only_with: tuple[str, ...] = ()) -> Callable[[VerbMutant], VerbMutant]:
    def register(fn: VerbMutant) -> VerbMutant:
        assert name not in VERB, f"verb mutant {name} registered twice"
        VERB[name] = fn
        if only_with:
            ONLY_WITH[name] = only_with
        return fn

    return register


def load_all() -> None:
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    load_all()
    return [*CONFIG, *VERB]
