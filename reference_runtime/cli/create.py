"""``create --bundle B [--pid-file P] [--console-socket S] ID``."""

from __future__ import annotations

import os

from reference_runtime.cli._common import one_id, store, system
from reference_runtime.cli.args import FLAG, VALUE, parse
from reference_runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.args import Parsed
    from reference_runtime.cli.main import Globals
    from reference_runtime.lifecycle.create import Options

OPTIONS = {
    "bundle": VALUE, "pid-file": VALUE, "console-socket": VALUE, "no-pivot": FLAG,
    "no-new-keyring": FLAG, "preserve-fds": VALUE, "pidfd-socket": VALUE,
}  # fmt: skip


def options_of(parsed: Parsed) -> Options:
    """--no-pivot, --preserve-fds and --console-socket, checked before anything is made."""
    from reference_runtime.lifecycle.create import Options

    raw = parsed.value("preserve-fds") or "0"
    if not raw.isdigit():
        raise UsageError(f"--preserve-fds {raw}: give a number of descriptors")
    count = int(raw)
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--preserve-fds {count}: descriptor {fd} is not open") from None
    socket_path = parsed.value("console-socket") or None
    return Options(no_pivot=parsed.flag("no-pivot"), preserve_fds=count,
                   console_socket=socket_path,
                   no_new_keyring=parsed.flag("no-new-keyring"))  # fmt: skip


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.cgroups import warmup

    # First: the grace period it waits for elapses during the imports (options_of's too).
    helper = warmup.start()
    try:
        parsed = parse(args, OPTIONS, aliases={"b": "bundle"})
        cid = one_id(g, parsed)
        options = options_of(parsed)
        from reference_runtime.lifecycle.create import create

        debug = g.log.debug if g.debug else None
        create(store(g), cid, parsed.value("bundle") or ".", system=system(g),
               pid_file=parsed.value("pid-file"), debug=debug, placed=helper,
               options=options)  # fmt: skip
    finally:
        if helper is not None:
            helper.stop()
    return 0
