"""``start ID``."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.lifecycle.start import start

    cid = one_id(g, parse(args, {}))
    start(store(g), cid)
    return 0
