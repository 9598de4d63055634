"""Writing the kernel's control files (cgroupfs, /proc/<pid>/uid_map, ...).

Each write(2) to such a file is one command to the kernel, so the text goes in a single
unbuffered write on a descriptor of its own; a refusal becomes a SyscallError naming the file
and what was written, which is what a user needs to see ("write /sys/.../pids.max (10)").
"""

from __future__ import annotations

import os

from reference_runtime.errors import SyscallError


def write_file(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, "write", f"{path} ({text.strip()})") from None
