"""``kill [--all] ID [SIGNAL]``: SIGNAL by name (with or without SIG) or number; TERM by default."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import FLAG, parse
from reference_runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.lifecycle.kill import kill
    from reference_runtime.linux.signals import parse_signal

    parsed = parse(args, {"all": FLAG}, aliases={"a": "all"})
    cid = one_id(g, parsed, extra=1)
    name = parsed.positionals[1] if len(parsed.positionals) > 1 else "TERM"
    try:
        signal = parse_signal(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    kill(store(g), cid, signal, all_processes=parsed.flag("all"))
    return 0
