"""``exec [options] ID [--] ARGS...`` (or ``--process FILE`` instead of ARGS)."""

from __future__ import annotations

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import FLAG, MULTI, VALUE, parse
from reference_runtime.errors import SpecError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals

OPTIONS = {
    "env": MULTI, "cwd": VALUE, "user": VALUE, "pid-file": VALUE, "detach": FLAG,
    "process": VALUE, "tty": FLAG, "console-socket": VALUE, "cap": MULTI,
    "no-new-privs": FLAG, "additional-gids": MULTI, "preserve-fds": VALUE,
    "process-label": VALUE, "apparmor": VALUE, "cgroup": MULTI, "ignore-paused": FLAG,
}  # fmt: skip
ALIASES = {"e": "env", "u": "user", "d": "detach", "p": "process", "t": "tty", "c": "cap"}


def _preserve_fds(raw: str) -> int:
    """--preserve-fds N: descriptors 3..3+N-1 go on to the process; each must be open."""
    import os

    if not raw.isdigit():
        raise UsageError(f"--preserve-fds {raw}: give a number of descriptors")
    count = int(raw)
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--preserve-fds {count}: descriptor {fd} is not open") from None
    return count


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime.lifecycle.exec import ExecRequest, exec_process

    parsed = parse(args, OPTIONS, aliases=ALIASES, stop_at_positional=True)
    cid = one_id(g, parsed, extra=len(parsed.positionals))
    req = ExecRequest()
    req.args = parsed.positionals[1:]
    if req.args[:1] == ["--"]:
        req.args = req.args[1:]
    req.env = parsed.values("env")
    req.cwd = parsed.value("cwd")
    req.user = parsed.value("user")
    req.pid_file = parsed.value("pid-file")
    req.detach = parsed.flag("detach")
    req.process_file = parsed.value("process")
    req.tty = parsed.flag("tty")
    req.preserve_fds = _preserve_fds(parsed.value("preserve-fds") or "0")
    for unsupported in ("cap", "additional-gids", "cgroup"):
        if parsed.values(unsupported):
            raise SpecError(f"--{unsupported} is not supported yet")
    req.console_socket = parsed.value("console-socket") or None
    from reference_runtime.cgroups import warmup

    helper = warmup.start()  # the exec'd process joins the container's cgroups: see warmup.py
    try:
        return exec_process(store(g), cid, req, placed=helper)
    finally:
        if helper is not None:
            helper.stop()
