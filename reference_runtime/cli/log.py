"""Messages for the user: one line on stderr per error, and the ``--log`` file (text or JSON)."""

from __future__ import annotations

import os
import time


class Log:
    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _append(self, level: str, msg: str) -> None:
        if self.path is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            from reference_runtime import jsonio

            line = jsonio.dumps({"level": level, "msg": msg, "time": stamp})
        else:
            quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
            line = f'time="{stamp}" level={level} msg="{quoted}"'
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # tolerated: the log is a copy; the message still reaches stderr

    def error(self, msg: str) -> None:
        os.write(2, (msg + "\n").encode(errors="replace"))
        self._append("error", msg)

    def debug(self, msg: str) -> None:
        if not self.debug_enabled:
            return
        if self.path is None:
            os.write(2, f"debug: {msg}\n".encode(errors="replace"))
        self._append("debug", msg)
