"""``ps [--format table|json] ID``: the host pids of the container's processes (its cgroup)."""

from __future__ import annotations

import os

from reference_runtime.cli._common import one_id, store
from reference_runtime.cli.args import VALUE, parse
from reference_runtime.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reference_runtime.cli.main import Globals


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime import jsonio
    from reference_runtime.lifecycle.container import Container
    from reference_runtime.lifecycle.kill import cgroup_of

    parsed = parse(args, {"format": VALUE}, aliases={"f": "format"})
    cid = one_id(g, parsed)
    fmt = parsed.value("format") or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt}: use table or json")
    ctr = Container.load(store(g), cid)
    pids = sorted(cgroup_of(ctr).pids())
    if fmt == "json":
        out = jsonio.dumps(pids) + "\n"
    else:
        lines = ["PID   CMD"]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            lines.append(f"{pid:<5} {cmd}")
        out = "\n".join(lines) + "\n"
    os.write(1, out.encode())
    return 0
