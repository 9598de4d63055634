"""``run --bundle B [--detach] [--pid-file P] ID``: create + start (+ wait + delete)."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store, system
from reference_runtime.cli.args import FLAG, parse
from reference_runtime.cli.create import OPTIONS as CREATE_OPTIONS
from reference_runtime.cli.create import options_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals

OPTIONS = {**CREATE_OPTIONS, "detach": FLAG, "keep": FLAG, "no-subreaper": FLAG}


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.cgroups import warmup

    # First: the grace period it waits for elapses during the imports (options_of's too).
    helper = warmup.start()
    try:
        parsed = parse(args, OPTIONS, aliases={"b": "bundle", "d": "detach"})
        cid = one_id(g, parsed)
        options = options_of(parsed)
        from reference_runtime.lifecycle.run import run as run_container

        debug = g.log.debug if g.debug else None
        return run_container(store(g), cid, parsed.value("bundle") or ".", system=system(g),
                             pid_file=parsed.value("pid-file"), detach=parsed.flag("detach"),
                             debug=debug, placed=helper, options=options)  # fmt: skip
    finally:
        if helper is not None:
            helper.stop()
