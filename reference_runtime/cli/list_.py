"""``list [--format table|json] [--quiet]``: the containers under --root."""

from __future__ import annotations

import os

from reference_runtime.cli._common import store
from reference_runtime.cli.args import FLAG, VALUE, parse
from reference_runtime.errors import NotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime import jsonio
    from reference_runtime.lifecycle.container import Container

    parsed = parse(args, {"format": VALUE, "quiet": FLAG}, aliases={"f": "format", "q": "quiet"})
    fmt = parsed.value("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt}: use table or json")
    g.object = "containers"
    s = store(g)
    states = []
    for cid in s.ids():
        try:
            states.append(Container.load(s, cid).public_state())
        except NotFound:
            continue  # deleted while we listed
    if parsed.flag("quiet"):
        out = "".join(st["id"] + "\n" for st in states)
    elif fmt == "json":
        out = jsonio.dumps(states) + "\n"
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED")]
        rows += [(st["id"], str(st["pid"]), st["status"], st["bundle"], st["created"])
                 for st in states]  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        out = "".join(
            "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4])) + "   " + r[4] + "\n"
            for r in rows
        )
    os.write(1, out.encode())
    return 0
