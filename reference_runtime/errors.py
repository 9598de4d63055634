"""The runtime's one error hierarchy.

Every refusal the user can see is a ``RuntimeFailure`` subclass carrying a one-line reason; the
CLI layer (and only it) turns one into ``failed to <verb> <object>: <reason>`` and an exit code.
``SyscallError`` is an ``OSError`` so callers may test ``errno`` the usual way.
"""

from __future__ import annotations

import os


class RuntimeFailure(Exception):
    """Base of every error the runtime reports to its user."""


class SpecError(RuntimeFailure):
    """The bundle or its config.json breaks the runtime-spec (or asks for what we lack)."""


class UsageError(RuntimeFailure):
    """The command line is wrong (unknown flag, missing id, ...)."""


class InvalidTransition(RuntimeFailure):
    """The operation is not allowed in the container's current status (runtime.md)."""

    def __init__(self, operation: str, status: str, allowed: tuple[str, ...]) -> None:
        self.operation = operation
        self.status = status
        self.allowed = allowed
        want = " or ".join(allowed) if allowed else "nothing"
        super().__init__(f"container is {status}; {operation} needs it {want}")


class NotFound(RuntimeFailure):
    """No container (or file) by that name."""


class Exists(RuntimeFailure):
    """A container with that id already exists."""


class ContainerInitError(RuntimeFailure):
    """The container's init reported a failure (carried across the pipe as errno + text)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        self.errno = errno
        super().__init__(message)


class SyscallError(OSError):
    """A system call failed: errno, the call's name and the path (or object) it acted on."""

    def __init__(self, errno: int, syscall: str, path: str = "") -> None:
        super().__init__(errno, os.strerror(errno), path or None)
        self.syscall = syscall
        self.path = path

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.syscall}{where}: {os.strerror(self.errno or 0)}"
