"""Mutants that bring back the shape of a runtime CVE (conformance/test_cve_*.py), safely.

Each reopens one hole the CVE tests probe, but only as far as the tests' own canaries: whatever
a mutant creates, touches or binds through a symlink is done only where the link leads into a
pytest temporary directory (where the tests keep their canaries) or stays inside the bundle's
rootfs. Descriptors handed on are only those the caller gave; nothing is written to a runtime
binary or a host sysctl.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from mutants import Call, config, verb

# Where the CVE tests keep their canaries (pytest's tmp_path): the only host place a mutant's
# symlink-following may reach.
CANARY_ROOTS = ("/tmp/pytest-of-",)


def _bundle(call: Call) -> Path:
    args = call.rest
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b") and i + 1 < len(args):
            return Path(args[i + 1])
    return Path.cwd()


def _rootfs(cfg: dict, call: Call) -> Path:
    root = Path(cfg["root"]["path"])
    return root if root.is_absolute() else _bundle(call) / root


def _host_resolved(rootfs: Path, inside: str) -> Path | None:
    """Where ``inside`` leads when resolved on the host (symlinks followed out of the rootfs,
    the mistake these CVEs share), if that is a canary's place; None otherwise."""
    real = Path(os.path.realpath(rootfs / inside.lstrip("/")))
    if str(real).startswith(CANARY_ROOTS) and not str(real).startswith(str(rootfs) + "/"):
        return real
    return None


def _hook(cfg: dict, script: str) -> None:
    """A createContainer hook: in the container's mount namespace, before pivot_root, where
    the host's paths (and the rootfs by its host path) are still reachable (config.md)."""
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    cfg.setdefault("hooks", {}).setdefault("createContainer", []).append(hook)


@config("mkdirall-follows-symlinks")
def mkdirall_follows_symlinks(cfg: dict, call: Call) -> None:
    # CVE-2024-45310 / CVE-2019-18837: mount points made by a path walk that follows the
    # image's symlinks on the host: an empty directory or file appears where they lead.
    rootfs = _rootfs(cfg, call)
    for mount in cfg.get("mounts") or []:
        target = _host_resolved(rootfs, mount.get("destination", ""))
        if target is None:
            continue
        source = mount.get("source", "")
        if mount.get("type") == "bind" and os.path.isfile(source):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)


@config("symlinked-mount-dropped")
def symlinked_mount_dropped(cfg: dict, call: Call) -> None:
    # A runtime that, finding a mount destination that is a symlink, quietly skips the mount
    # (and what it would have made under it) instead of refusing: /proc or /sys inside is then
    # not the kernel's filesystem.
    rootfs = _rootfs(cfg, call)
    dropped = [
        m.get("destination", "/") for m in cfg.get("mounts") or []
        if (rootfs / m.get("destination", "/").lstrip("/")).is_symlink()
    ]  # fmt: skip
    if not dropped:
        return

    def under(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dropped)

    cfg["mounts"] = [m for m in cfg["mounts"] if not under(m.get("destination", "/"))]
    linux = cfg.get("linux") or {}
    for key in ("maskedPaths", "readonlyPaths"):
        linux[key] = [p for p in linux.get(key) or [] if not under(p)]
    if "/proc" in dropped:
        linux.pop("sysctl", None)


@config("devnodes-follow-symlinks")
def devnodes_follow_symlinks(cfg: dict, call: Call) -> None:
    # CVE-2026-41579 / -47766 / -88264 / -88265: /dev entries made and chowned through the
    # image's symlinks (a /dev link, a /dev/console or /dev/null link) on the host.
    rootfs = _rootfs(cfg, call)
    user = (cfg.get("process") or {}).get("user") or {}
    names = ["null", "zero", "full", "tty", "random", "urandom", "console", "ptmx"]
    for name in names:
        target = _host_resolved(rootfs, f"/dev/{name}")
        if target is None or not target.parent.is_dir():
            continue
        target.touch()
        os.chown(target, int(user.get("uid", 0)), int(user.get("gid", 0)))


@config("proc-overmount-late")
def proc_overmount_late(cfg: dict, call: Call) -> None:
    # CVE-2019-16884: a mount over /proc is made (a hook does it, as runc refuses it in the
    # config) and the runtime's later /proc writes (sysctls) go into whatever is there.
    mounts = cfg.get("mounts") or []
    over = [m for m in mounts if m.get("destination") == "/proc" and m.get("type") != "proc"]
    if not over:
        return
    cfg["mounts"] = [m for m in mounts if m not in over]
    target = shlex.quote(str(_rootfs(cfg, call) / "proc"))
    steps = []
    for m in over:
        if m.get("type") == "bind":
            steps.append(f"mount --rbind {shlex.quote(m['source'])} {target}")
        else:
            steps.append(f"mount -t tmpfs -o size=64k tmpfs {target}")
    _hook(cfg, "; ".join(steps))


@config("long-strings-truncated")
def long_strings_truncated(cfg: dict, call: Call) -> None:
    # CVE-2021-43784: a length kept in 16 bits: strings past 64 KiB are cut, a hostname past
    # the kernel's 64 bytes is cut to fit instead of refused.
    limit = 65535
    cfg["annotations"] = {k: v[:limit] for k, v in (cfg.get("annotations") or {}).items()}
    process = cfg.get("process") or {}
    process["env"] = [e[:limit] for e in process.get("env") or []]
    if len(cfg.get("hostname", "")) > 64:
        cfg["hostname"] = cfg["hostname"][:64]


@config("cgroupfs-rw")
def cgroupfs_rw(cfg: dict, call: Call) -> None:
    # CVE-2023-25809: the cgroup hierarchies mounted read-write inside.
    for mount in cfg.get("mounts") or []:
        if mount.get("type") in ("cgroup", "cgroup2"):
            mount["options"] = [o for o in mount.get("options") or [] if o != "ro"] + ["rw"]


def _with_preserved(call: Call, count: int) -> list[str]:
    rest = list(call.rest)
    if any(a == "--preserve-fds" or a.startswith("--preserve-fds=") for a in rest):
        return call.args
    return [*call.globals, call.verb or "", "--preserve-fds", str(count), *rest]


@verb("preserve-fds-forced")
def preserve_fds_forced(call: Call) -> int | None:
    # CVE-2024-21626: descriptors the caller left open reach the container (and its cwd may
    # name them). Only the caller's own descriptors 3 and 4, and only if they are open.
    if call.verb not in ("create", "run", "exec"):
        return None
    open_fds = [fd for fd in (3, 4) if _is_open(fd)]
    if len(open_fds) != 2:
        return None
    return call.real(_with_preserved(call, 2))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@verb("runtime-visible-in-container")
def runtime_visible_in_container(call: Call) -> int | None:
    # CVE-2019-5736: a process of the runtime, running the host's binary from a writable
    # mount, sits in the container's pid namespace (here `events`, which only reads stats and
    # exits when the container goes). Nothing writes to the binary.
    code = call.real()
    if call.verb != "create" or code != 0:
        return code
    cid = call.container_id
    state = subprocess.run([_real(), *call.globals, "state", cid], capture_output=True, text=True)
    pid = json.loads(state.stdout).get("pid") if state.returncode == 0 else None
    if pid:
        # Without capabilities (setpriv): a process holding more than the container's own
        # could not be looked at from inside anyway (ptrace access mode, ptrace(2)).
        subprocess.Popen(
            ["nsenter", "-t", str(pid), "--pid", "--", "setpriv", "--bounding-set=-all",
             "--inh-caps=-all", "--", _real(), *call.globals, "events", "--interval", "1h", cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return code


def _real() -> str:
    from mutants import REAL

    return REAL


@verb("exec-process-inheritable")
def exec_process_inheritable(call: Call) -> int | None:
    # CVE-2022-27650: exec --process gives its process the bounding set as inheritable, not
    # the inheritable set the process object lists (userns_console_exec.py's
    # exec-caps-inheritable does the same to an exec without --process).
    if call.verb != "exec":
        return None
    rest = list(call.rest)
    found = [rest[i + 1] for i, a in enumerate(rest[:-1]) if a in ("--process", "-p")]
    if not found:
        return None
    process = json.loads(Path(found[0]).read_text())
    caps = process.setdefault("capabilities", {})
    caps["inheritable"] = list(caps.get("bounding") or [])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(process, f)
    try:
        return call.real([f.name if a == found[0] else a for a in call.args])
    finally:
        os.unlink(f.name)


def _leaked_dir(cwd: str) -> str | None:
    """The host directory a cwd of /proc/self/fd/N names in this (the runtime's) process, if
    it is a canary's; None otherwise."""
    if not cwd.startswith("/proc/self/fd/"):
        return None
    try:
        where = os.readlink(f"/proc/self/fd/{cwd.rsplit('/', 1)[1]}")
    except (OSError, ValueError):
        return None
    return where if where.startswith(CANARY_ROOTS) and os.path.isdir(where) else None


@config("cwd-fd-on-host")
def cwd_fd_on_host(cfg: dict, call: Call) -> None:
    # CVE-2024-21626: process.cwd /proc/self/fd/N followed to the caller's leaked host
    # directory (a bind of it stands for the leaked fd, only for a canary's directory).
    process = cfg.get("process") or {}
    leaked = _leaked_dir(process.get("cwd", "/"))
    if leaked is None:
        return
    cfg.setdefault("mounts", []).append(
        {"destination": "/.bh-leaked-cwd", "type": "bind", "source": leaked,
         "options": ["rbind", "rw"]}
    )  # fmt: skip
    process["cwd"] = "/.bh-leaked-cwd"


@verb("cwd-fd-on-host")
def exec_cwd_fd_on_host(call: Call) -> int | None:
    # The same for exec --cwd: nsenter opens the directory on the host before it joins the
    # container's namespaces (nsenter(1) --wd), as runc's leaked fd did.
    if call.verb != "exec":
        return None
    rest = list(call.rest)
    at = [i for i, a in enumerate(rest[:-1]) if a == "--cwd"]
    leaked = _leaked_dir(rest[at[0] + 1]) if at else None
    if leaked is None:
        return None
    state = subprocess.run([_real(), *call.globals, "state", call.container_id],
                           capture_output=True, text=True, check=False)  # fmt: skip
    pid = json.loads(state.stdout).get("pid") if state.returncode == 0 else None
    if not pid:
        return None
    args = rest[rest.index(call.container_id) + 1 :]
    return subprocess.call(
        ["nsenter", "-t", str(pid), "--all", f"--wd={leaked}", "--", *args], close_fds=False
    )
