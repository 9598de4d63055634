"""Hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle" steps 3-13).

Who runs which kind, and where (the namespaces are the caller's):

=================  ===========================  ====================================
kind               run by                       when
=================  ===========================  ====================================
prestart           the runtime (create)         mounts made, before pivot_root
createRuntime      the runtime (create)         right after prestart
createContainer    the container's init         after those, before pivot_root
startContainer     the container's init         on ``start``, before execve
poststart          the runtime (start)          once the program is executed
poststop           the runtime (delete)         once the container is destroyed
=================  ===========================  ====================================

A hook is executed exactly as configured: ``path`` with ``args`` as its argv (argv[0]
included) and ``env`` as its whole environment (nothing inherited: CVE-2025-23266), the state
JSON on its stdin, killed when it overruns ``timeout``. Its stdout and stderr are the caller's.
Written with fork/execve rather than subprocess: the init runs hooks after pivot_root, where
modules can no longer be imported, and subprocess costs 11 ms to import (design.md §5).
"""

from __future__ import annotations

import os
import time

from reference_runtime.errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# config.md: startContainer's path resolves in the container; every other kind's in the
# runtime's namespace, where it can be checked at create.
PATH_IN_CONTAINER = ("startContainer",)


class HookError(RuntimeFailure):
    pass


class Hook:
    __slots__ = ("args", "env", "kind", "path", "timeout")

    def __init__(self, kind: str, path: str, args: list[str], env: list[str],
                 timeout: int | None) -> None:  # fmt: skip
        self.kind = kind
        self.path = path
        self.args = args or [path]
        self.env = env
        self.timeout = timeout

    def describe(self) -> str:
        return f"{self.kind} hook {self.path}"


def hooks_of(config: dict[str, Any], kind: str) -> list[Hook]:
    """The hooks of one kind from a (validated) config document, in listed order."""
    hooks = config.get("hooks") or {}
    out = []
    for raw in hooks.get(kind) or []:
        out.append(Hook(kind, raw["path"], list(raw.get("args") or []),
                        list(raw.get("env") or []), raw.get("timeout")))  # fmt: skip
    return out


def _environ(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def run_hook(hook: Hook, state: bytes) -> None:
    """Runs one hook to completion; HookError when it fails, cannot run or overruns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from reference_runtime.linux.signals import reset_for_exec

            os.dup2(r, 0)  # dup2 makes fd 0 inheritable; r itself is O_CLOEXEC
            reset_for_exec()
            os.execve(hook.path, hook.args, _environ(hook.env))
        except BaseException as exc:
            msg = f"cannot execute {hook.describe()}: {getattr(exc, 'strerror', None) or exc}\n"
            os.write(2, msg.encode(errors="replace"))
        os._exit(127)
    os.close(r)
    try:
        os.write(w, state)  # the state is far below the pipe's 64 KiB: this never blocks
    except BrokenPipeError:
        pass  # tolerated: a hook that does not read its stdin
    finally:
        os.close(w)
    deadline = None if hook.timeout is None else time.monotonic() + hook.timeout
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            try:  # noqa: SIM105 - contextlib would cost start-up time
                os.kill(pid, 9)
            except ProcessLookupError:
                pass  # tolerated: it exited just now; the wait below collects it
            os.waitpid(pid, 0)
            raise HookError(f"{hook.describe()} did not finish within {hook.timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise HookError(f"{hook.describe()} {how}")


def run_all(hooks: list[Hook], state: bytes) -> None:
    """Runs hooks in order, stopping at the first failure (runtime.md steps 3-9)."""
    for hook in hooks:
        run_hook(hook, state)


def run_all_warning(hooks: list[Hook], state: bytes) -> list[str]:
    """poststop (runtime.md step 13): a failure is only a warning and the rest still run."""
    warnings = []
    for hook in hooks:
        try:
            run_hook(hook, state)
        except HookError as exc:
            warnings.append(str(exc))
    return warnings


def state_json(base: dict[str, Any], status: str, pid: int) -> bytes:
    """The state of runtime.md "State", as a hook receives it."""
    from reference_runtime import jsonio

    doc = {"ociVersion": base["ociVersion"], "id": base["id"], "status": status,
           "pid": pid, "bundle": base["bundle"]}  # fmt: skip
    if base.get("annotations"):
        doc["annotations"] = base["annotations"]
    return jsonio.dumps(doc).encode()
