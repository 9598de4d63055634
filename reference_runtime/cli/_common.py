"""Helpers the verb modules share: the one container id, and typed access to Globals."""

from __future__ import annotations

from reference_runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.args import Parsed
    from reference_runtime.cli.main import Globals
    from reference_runtime.lifecycle.store import Store
    from reference_runtime.linux.system import System


def one_id(g: Globals, parsed: Parsed, extra: int = 0) -> str:
    """The container id (the first positional); at most ``extra`` more positionals allowed."""
    if not parsed.positionals:
        raise UsageError(f"{g.verb} needs a container id")
    if len(parsed.positionals) > 1 + extra:
        raise UsageError(f"unexpected arguments: {' '.join(parsed.positionals[1 + extra :])}")
    cid = parsed.positionals[0]
    g.object = f"container {cid}"
    return cid


def store(g: Globals) -> Store:
    return g.store()


def system(g: Globals) -> System:
    return g.system
