"""Mutants that get the container process wrong: its argv, environment, cwd, identity,
capabilities, limits and scheduling (config.md "Process", config-linux.md "Personality").

None of them widens what the container can reach outside itself beyond what the suite already
grants in some test: the extra capability is CAP_SYS_PTRACE, which inside the container's own
pid namespace reaches only the container's processes.
"""

from __future__ import annotations

import os

from mutants import Call, config


def _process(cfg: dict) -> dict:
    process = cfg.setdefault("process", {})
    assert isinstance(process, dict)
    return process


@config("args-truncated")
def args_truncated(cfg: dict, call: Call) -> None:
    # A runtime that loses the last argument (an off-by-one in building argv).
    args = _process(cfg).get("args") or []
    if len(args) > 3:
        args.pop()


@config("env-leaks")
def env_leaks(cfg: dict, call: Call) -> None:
    # A runtime that adds a variable of its own.
    _process(cfg).setdefault("env", []).append("BULKHEAD_LEAKED=1")


@config("env-inherits")
def env_inherits(cfg: dict, call: Call) -> None:
    # A runtime that passes its own environment on (CVE-2025-23266's shape, for the process).
    env = _process(cfg).setdefault("env", [])
    have = {entry.partition("=")[0] for entry in env}
    env += [f"{name}={value}" for name, value in os.environ.items() if name not in have]


@config("path-ignored")
def path_ignored(cfg: dict, call: Call) -> None:
    # A runtime that looks args[0] up in a PATH of its own instead of the configured one.
    env = _process(cfg).setdefault("env", [])
    env[:] = [e for e in env if not e.startswith("PATH=")] + ["PATH=/usr/bin:/bin"]


@config("cwd-ignored")
def cwd_ignored(cfg: dict, call: Call) -> None:
    process = _process(cfg)
    if str(process.get("cwd", "/")).startswith("/"):
        process["cwd"] = "/"


@config("cwd-relative-accepted")
def cwd_relative_accepted(cfg: dict, call: Call) -> None:
    # A runtime that takes a relative cwd as relative to the container's root.
    process = _process(cfg)
    process["cwd"] = "/" + str(process.get("cwd", "")).lstrip("/")


@config("user-ignored")
def user_ignored(cfg: dict, call: Call) -> None:
    user = _process(cfg).setdefault("user", {})
    user["uid"] = 0
    user["gid"] = 0


@config("groups-ignored")
def groups_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).get("user", {}).pop("additionalGids", None)


@config("umask-ignored")
def umask_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).get("user", {}).pop("umask", None)


@config("rlimits-ignored")
def rlimits_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).pop("rlimits", None)


@config("rlimits-lenient")
def rlimits_lenient(cfg: dict, call: Call) -> None:
    # A runtime that quietly drops rlimit types it does not know instead of refusing them.
    process = _process(cfg)
    known = {f"RLIMIT_{n}" for n in _RLIMITS}
    process["rlimits"] = [r for r in process.get("rlimits", []) if r.get("type") in known]


_RLIMITS = (
    "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS",
    "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
)  # fmt: skip


@config("caps-added")
def caps_added(cfg: dict, call: Call) -> None:
    # A runtime that grants one capability more than asked for, in every set it sets.
    caps = _process(cfg).setdefault("capabilities", {})
    for name in ("bounding", "effective", "permitted"):
        current = caps.setdefault(name, [])
        if "CAP_SYS_PTRACE" not in current:
            current.append("CAP_SYS_PTRACE")


@config("caps-inheritable")
def caps_inheritable(cfg: dict, call: Call) -> None:
    # CVE-2022-29162: the inheritable set filled from bounding, not left as configured.
    caps = _process(cfg).setdefault("capabilities", {})
    caps["inheritable"] = list(caps.get("bounding", []))


@config("ambient-ignored")
def ambient_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).get("capabilities", {}).pop("ambient", None)


@config("no-new-privs-ignored")
def no_new_privs_ignored(cfg: dict, call: Call) -> None:
    _process(cfg)["noNewPrivileges"] = False


@config("no-new-privs-forced")
def no_new_privs_forced(cfg: dict, call: Call) -> None:
    _process(cfg)["noNewPrivileges"] = True


@config("console-size-as-terminal")
def console_size_as_terminal(cfg: dict, call: Call) -> None:
    # A runtime that takes consoleSize to mean "give it a terminal" (and so needs a console
    # socket it was not given).
    process = _process(cfg)
    if "consoleSize" in process:
        process["terminal"] = True


@config("oom-score-ignored")
def oom_score_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).pop("oomScoreAdj", None)


@config("oom-score-default")
def oom_score_default(cfg: dict, call: Call) -> None:
    # A runtime that writes a value of its own when none is configured (raising only: lowering
    # oom_score_adj would need CAP_SYS_RESOURCE).
    _process(cfg).setdefault("oomScoreAdj", 999)


@config("scheduler-ignored")
def scheduler_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).pop("scheduler", None)


@config("io-priority-ignored")
def io_priority_ignored(cfg: dict, call: Call) -> None:
    _process(cfg).pop("ioPriority", None)


@config("personality-ignored")
def personality_ignored(cfg: dict, call: Call) -> None:
    cfg.get("linux", {}).pop("personality", None)
