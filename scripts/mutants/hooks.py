"""Mutants that get hooks wrong (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").

The config mutants rewrite the config the real runtime is given at create/run time; runc and
crun keep that config for the container's later verbs, so ``start`` and ``delete`` run the
mutated hooks too. None makes a hook do more than it was configured to do on the host: they
drop, reorder, move or re-wrap the configured hooks, or add a harmless variable to their
environment. One verb mutant turns a poststop hook's failure into a failed delete.
"""

from __future__ import annotations

import subprocess
import sys

from mutants import REAL, Call, config, verb

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _each_hook(cfg: dict) -> list[dict]:
    hooks = cfg.get("hooks") or {}
    return [hook for kind in KINDS for hook in hooks.get(kind) or []]


@config("hooks-skipped")
def hooks_skipped(cfg: dict, call: Call) -> None:
    """A runtime that ignores the hooks section altogether."""
    cfg.pop("hooks", None)


@config("hooks-reordered")
def hooks_reordered(cfg: dict, call: Call) -> None:
    """Each kind's hooks run in reverse, and createRuntime's run before prestart's."""
    hooks = cfg.get("hooks")
    if not hooks:
        return
    for kind in KINDS:
        if hooks.get(kind):
            hooks[kind] = list(reversed(hooks[kind]))
    prestart, create_runtime = hooks.pop("prestart", None), hooks.pop("createRuntime", None)
    if create_runtime:
        hooks["prestart"] = create_runtime
    if prestart:
        hooks["createRuntime"] = prestart


@config("hook-env-inherited")
def hook_env_inherited(cfg: dict, call: Call) -> None:
    """Hooks get the container's process.env on top of their own (the CVE-2025-23266 shape)."""
    process_env = (cfg.get("process") or {}).get("env") or []
    inherited = [*process_env, "BULKHEAD_MUTANT_INHERITED=1"]
    for hook in _each_hook(cfg):
        env = list(hook.get("env") or [])
        hook["env"] = env + [item for item in inherited if item not in env]


@config("hook-failure-ignored")
def hook_failure_ignored(cfg: dict, call: Call) -> None:
    """A hook's exit status is ignored: for a failing hook, as if it were /bin/true.

    The hook is run by ``/bin/sh -c '"$0" "$@" || :'`` (the host's sh, or the container's for
    startContainer) with its own path and args, env and timeout; it still runs and records.
    Hooks with a timeout are left alone: the timeout tests' overrunning hook must stay the
    process the runtime kills, or its sleep would outlive the wrapper.
    """
    for hook in _each_hook(cfg):
        if hook.get("timeout"):
            continue
        args = hook.get("args") or [hook["path"]]
        hook["args"] = ["sh", "-c", '"$0" "$@" || :', hook["path"], *args[1:]]
        hook["path"] = "/bin/sh"


@config("hook-timeout-dropped")
def hook_timeout_dropped(cfg: dict, call: Call) -> None:
    """A runtime that never aborts a hook: every hook may run as long as it likes."""
    for hook in _each_hook(cfg):
        hook.pop("timeout", None)


@config("createcontainer-in-runtime-ns")
def createcontainer_in_runtime_ns(cfg: dict, call: Call) -> None:
    """createContainer hooks run as the last createRuntime hooks: in the runtime's namespaces."""
    hooks = cfg.get("hooks") or {}
    moved = hooks.pop("createContainer", None)
    if moved:
        hooks["createRuntime"] = [*(hooks.get("createRuntime") or []), *moved]


@config("hook-state-says-stopped")
def hook_state_says_stopped(cfg: dict, call: Call) -> None:
    """Every hook is told the container is stopped: its stdin is rewritten on the way in.

    Like hook-failure-ignored, the hook is run by /bin/sh (sed is the host's, or busybox's for
    startContainer); its exit status is the pipeline's, so failures still count.
    """
    rewrite = '/bin/sed "s/\\"status\\": *\\"[a-z]*\\"/\\"status\\":\\"stopped\\"/" | "$0" "$@"'
    for hook in _each_hook(cfg):
        if hook.get("timeout"):
            continue
        args = hook.get("args") or [hook["path"]]
        hook["args"] = ["sh", "-c", rewrite, hook["path"], *args[1:]]
        hook["path"] = "/bin/sh"


@verb("poststop-failure-fatal")
def poststop_failure_fatal(call: Call) -> int | None:
    """delete fails when a poststop hook failed, where that is a warning only."""
    if call.verb != "delete":
        return None
    done = subprocess.run([REAL, *call.args], capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode == 0 and "hook" in done.stderr:
        return 1
    return done.returncode
