"""``state ID``: the state of runtime.md as JSON on stdout."""

from __future__ import annotations

import os

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime import jsonio
    from reference_runtime.lifecycle.container import Container

    cid = one_id(g, parse(args, {}))
    ctr = Container.load(store(g), cid)
    os.write(1, (jsonio.dumps(ctr.public_state()) + "\n").encode())
    return 0
