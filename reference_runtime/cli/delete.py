"""``delete [--force] ID``."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import FLAG, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.lifecycle.delete import delete

    parsed = parse(args, {"force": FLAG}, aliases={"f": "force"})
    cid = one_id(g, parsed)
    delete(store(g), cid, force=parsed.flag("force"))
    return 0
