"""Mutants that get namespaces wrong."""

from __future__ import annotations

import json
import subprocess
import sys

from mutants import REAL, Call, config, verb


def _drop(kind: str) -> None:
    def mutate(cfg: dict, call: Call) -> None:
        linux = cfg.get("linux", {})
        linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] != kind]
        if kind == "uts":
            cfg.pop("hostname", None)  # runc refuses a hostname without a UTS namespace
            cfg.pop("domainname", None)

    config(f"no-{'net' if kind == 'network' else kind}-ns")(mutate)


for _kind in ("pid", "uts", "ipc", "network"):
    _drop(_kind)


# Only with runc, which refuses a rootfs without a private mount namespace: another runtime
# might mount the container's /proc and /sys over the host's.
@config("no-mount-ns", only_with=("runc",))
def no_mount_ns(cfg: dict, call: Call) -> None:
    linux = cfg.get("linux", {})
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] != "mount"]


@config("all-namespaces")
def all_namespaces(cfg: dict, call: Call) -> None:
    # A runtime that always isolates, whatever the config asks for.
    linux = cfg.setdefault("linux", {})
    have = {n["type"] for n in linux.get("namespaces", [])}
    for kind in ("pid", "network", "ipc", "uts", "mount"):
        if kind not in have:
            linux.setdefault("namespaces", []).append({"type": kind})


@config("dedupe-namespaces")
def dedupe_namespaces(cfg: dict, call: Call) -> None:
    # A runtime that quietly ignores a repeated namespace type instead of refusing the config.
    linux = cfg.setdefault("linux", {})
    seen, kept = set(), []
    for ns in linux.get("namespaces", []):
        if ns["type"] not in seen:
            seen.add(ns["type"])
            kept.append(ns)
    linux["namespaces"] = kept


@config("no-hostname")
def no_hostname(cfg: dict, call: Call) -> None:
    cfg["hostname"] = "wrong-host"


@config("no-domainname")
def no_domainname(cfg: dict, call: Call) -> None:
    cfg.pop("domainname", None)


@config("netns-path-ignored")
def netns_path_ignored(cfg: dict, call: Call) -> None:
    # A runtime that ignores a network namespace's path and always makes a new one.
    for ns in cfg.get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network":
            ns.pop("path", None)


# runc's exec options that take a value (runc exec --help); the container id follows them.
_EXEC_VALUED = {
    "--console-socket", "--cwd", "--env", "-e", "--user", "-u", "--additional-gids", "-g",
    "--process", "-p", "--pid-file", "--process-label", "--apparmor", "--cap", "-c",
    "--preserve-fds", "--cgroup",
}  # fmt: skip


def _exec_parts(rest: list[str]) -> tuple[dict[str, str], str | None, str, list[str]]:
    """(--env values, --cwd, container id, command) of an exec call's arguments."""
    env: dict[str, str] = {}
    cwd = None
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        opt, eq, value = rest[i].partition("=")
        if not eq and opt in _EXEC_VALUED:
            i += 1
            value = rest[i] if i < len(rest) else ""
        if opt in ("--env", "-e"):
            key, _, val = value.partition("=")
            env[key] = val
        elif opt == "--cwd":
            cwd = value
        i += 1
    return env, cwd, (rest[i] if i < len(rest) else ""), rest[i + 1 :]


@verb("exec-joins-only-mount")
def exec_joins_only_mount(call: Call) -> int | None:
    # An exec that enters the container's mount namespace (and root) but no other: the process
    # sees the container's files and its /proc, yet lives in the runtime's pid, uts, ipc and
    # network namespaces. Tests that change those through exec guard themselves first (the
    # UTS test checks the exec'd process's own namespace before renaming; IPC objects carry
    # the session token, so the leak sentinel removes any that land on the host).
    if call.verb != "exec":
        return None
    env, cwd, cid, command = _exec_parts(call.rest)
    state = subprocess.run(
        [REAL, *call.globals, "state", cid], capture_output=True, text=True, check=False
    )
    if state.returncode != 0:
        sys.stderr.write(state.stderr)
        return state.returncode
    pid = json.loads(state.stdout)["pid"]
    # nsenter --wd uses the target's working directory; a --cwd is applied by a shell inside.
    if cwd is not None:
        command = ["sh", "-c", 'cd "$0" && exec "$@"', cwd, *command]
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    argv = ["nsenter", "--target", str(pid), "--mount", "--root", "--wd", "--", *command]
    return subprocess.call(argv, env={**base, **env})


@config("mqueue-as-tmpfs")
def mqueue_as_tmpfs(cfg: dict, call: Call) -> None:
    # A runtime that puts an empty directory where the container's mqueue filesystem belongs:
    # listing it shows no queue of any namespace.
    for mount in cfg.get("mounts", []):
        if mount.get("destination") == "/dev/mqueue":
            mount.update(type="tmpfs", source="tmpfs")
