"""mount(2) with a chosen working directory, for mount data that names paths relative to it.

The data argument of mount(2) is copied into a single page (PAGE_SIZE, 4096 bytes here), so an
overlay with many layers does not fit when every lowerdir is an absolute path; docker's overlay2
driver gives short relative names ("l/<26 chars>") and mounts with its working directory in the
driver's directory. The working directory is per process and shared by every thread, so it is
changed in a forked child that only calls mount(2) and exits: the caller's cwd (and any other
thread's idea of it) never moves. The child shares the caller's mount namespace, so the mount is
the caller's. Its errno comes back as the exit status (errno values are < 256).
"""

from __future__ import annotations

import os

from reference_runtime.errors import SyscallError
from reference_runtime.linux import libc


def mount_in(cwd: str, source: str | None, target: str, fstype: str | None, flags: int,
             data: str | None) -> None:  # fmt: skip
    """mount(2) run with the working directory ``cwd``; raises SyscallError naming ``target``."""
    try:
        pid = os.fork()
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "fork", target) from None
    if pid == 0:  # pragma: no cover - the child
        code = 255
        try:
            os.chdir(cwd)
            libc.mount(source, target, fstype, flags, data)
            code = 0
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SyscallError(code if code > 0 else 255, "mount", target)
