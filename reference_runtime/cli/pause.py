"""``pause ID`` and ``resume ID``."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.lifecycle.pause import pause, resume

    cid = one_id(g, parse(args, {}))
    (pause if g.verb == "pause" else resume)(store(g), cid)
    return 0
