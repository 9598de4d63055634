"""Hook scripts for the hook tests, and what they record (config.md "POSIX-platform Hooks").

Every hook entry a test configures is a ``/bin/sh`` script of its own in a directory the test
owns, ``<bundle>/hooks``. The same directory is bind-mounted into the container at
``/bulkhead-hooks``, so a hook that runs inside the container after ``pivot_root``
(startContainer) and the user program write into it as well, and one ``order`` file holds the
sequence of everything that ran, from whichever side.

A hook records, each in ``<name>.<what>``:

- ``stdin``: the state JSON it was given (config.md: "The state of the container MUST be passed
  to hooks over stdin");
- ``argv`` and ``environ``: its own ``/proc/self/cmdline`` and ``/proc/self/environ``, opened by
  the shell itself (a redirection of the shell, not of a child), so they are what the runtime's
  ``execve`` gave this process and not what a helper was given;
- ``pid``: ``$$`` (after an ``exec`` of a sleep, the sleeping process's pid);
- ``ns``: its namespaces (``/proc/self/ns/*``, read by a child, which shares them);
- where the host's ``/proc`` shows it (runtime-namespace hooks), what the container's init looks
  like at that moment: its namespaces, its command line, whether its root still shows the host's
  tree (``pivot_root`` not done yet) and whether the container's own mounts are in place, the
  container's cgroup directories, and the environment of its parent (the runtime);

then appends ``<seq> <name>`` to ``order`` and ends as told: exit with a status, or ``exec`` a
bounded sleep (the process the runtime started is the one sleeping, so a timeout that kills it
leaves nothing behind).

Safety: hooks run as root on the host. The scripts write only below the test's own directory
(or, inside the container, to the bind of it), use absolute paths to the host's or busybox's
tools (a hook's environment is exactly what the config gives it: no PATH), never sleep longer
than ``MAX_SLEEP`` seconds, and start no background process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bulkhead.bundle import Bundle
from bulkhead.containers import Container, ContainerFactory
from bulkhead.spec import Hook, Hooks, Mount, Spec

Kind = Literal[
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"
]
# In lifecycle order (runtime.md "Lifecycle", steps 3, 4, 5, 7, 9 and 13).
KINDS: tuple[Kind, ...] = (
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
)  # fmt: skip
CREATE_PHASE: tuple[Kind, ...] = ("prestart", "createRuntime", "createContainer")
# config.md: each kind's path resolves, and the hook executes, in one of two namespaces.
RUNS_IN_CONTAINER: frozenset[Kind] = frozenset({"createContainer", "startContainer"})
PATH_IN_CONTAINER: frozenset[Kind] = frozenset({"startContainer"})
FIELD: dict[Kind, str] = {
    "prestart": "prestart",
    "createRuntime": "create_runtime",
    "createContainer": "create_container",
    "startContainer": "start_container",
    "poststart": "poststart",
    "poststop": "poststop",
}

INSIDE = "/bulkhead-hooks"  # where the hook directory is bound inside the container
NS_TYPES = ("mnt", "pid", "net", "uts", "ipc", "cgroup", "user")
MAX_SLEEP = 5  # seconds; the longest any hook script sleeps
PROGRAM = "program"  # the user program's name in the order file

# POSIX sh that dash (the host's /bin/sh) and busybox sh (the container's) both run.
_RECORDER = """\
#!/bin/sh
# Bulkhead hook test: records how the {kind} hook {name} was run (see conformance/_hooks.py).
set -e
d={dir}
n={name}
[ -d "$d" ] || exit 97
exec 3</proc/self/cmdline 4</proc/self/environ
/bin/cat <&3 >"$d/$n.argv"
/bin/cat <&4 >"$d/$n.environ"
exec 3<&- 4<&-
/bin/cat >"$d/$n.stdin"
echo "$$" >"$d/$n.pid"
for t in {ns_types}; do
  printf '%s %s\\n' "$t" "$(/bin/readlink /proc/self/ns/$t)"
done >"$d/$n.ns"
{inspect}i=0
if [ -f "$d/order" ]; then
  while read -r _ _; do i=$((i + 1)); done <"$d/order"
fi
printf '%s %s\\n' "$i" "$n" >>"$d/order"
{ending}
"""

# Only where the host's /proc is this hook's /proc: the init's pid in the state is a host pid.
_INSPECT = """\
pid=$(/bin/sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p' "$d/$n.stdin")
if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
  for t in {ns_types}; do
    printf '%s %s\\n' "$t" "$(/bin/readlink /proc/$pid/ns/$t)"
  done >"$d/$n.init-ns"
  /bin/cat /proc/$pid/cmdline >"$d/$n.init-cmdline"
  if [ -e "/proc/$pid/root$d/$n.stdin" ]; then echo yes; else echo no; fi >"$d/$n.init-sees-host"
  if [ -e "/proc/$pid/root{rootfs}{inside}/{name}.sh" ]; then echo yes; else echo no; fi \
    >"$d/$n.init-mounts-done"
fi
for c in /sys/fs/cgroup/*/{cid} /sys/fs/cgroup/{cid}; do
  if [ -d "$c" ]; then echo "$c"; fi
done >"$d/$n.cgroups"
if [ -r "/proc/$PPID/environ" ]; then
  exec 5<"/proc/$PPID/environ"
  /bin/cat <&5 >"$d/$n.parent-environ"
  exec 5<&-
fi
"""

# createContainer runs in the container's mount namespace before pivot_root: the host's tree
# (and our directory) is still its root, and the container's own mounts are below the rootfs.
_INSPECT_OWN_MOUNTS = """\
if [ -e "{rootfs}{inside}/{name}.sh" ]; then echo yes; else echo no; fi >"$d/$n.mounts-done"
"""


def _q(value: str) -> str:
    return shlex.quote(value)


@dataclass(frozen=True)
class Record:
    """What one hook recorded; every field is None when the hook did not get that far."""

    name: str
    stdin: str | None
    argv: list[str] | None
    environ: list[str] | None
    ns: dict[str, str] | None
    init_ns: dict[str, str] | None
    init_cmdline: list[str] | None
    init_sees_host: bool | None
    init_mounts_done: bool | None
    mounts_done: bool | None
    cgroups: list[str] | None
    pid: int | None
    parent_environ: list[str] | None

    def state(self) -> dict[str, Any]:
        assert self.stdin is not None, f"hook {self.name} recorded no stdin"
        try:
            data = json.loads(self.stdin)
        except ValueError as exc:
            raise AssertionError(f"hook {self.name} got no JSON on stdin: {self.stdin!r}") from exc
        assert isinstance(data, dict), f"hook {self.name} got {self.stdin!r} on stdin"
        return data


def _nul_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return text.split("\0")[:-1] if text.endswith("\0") else text.split("\0")


def _ns_map(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def _flag(text: str | None) -> bool | None:
    return None if text is None else text.strip() == "yes"


@dataclass
class HookDir:
    """The test's hook directory: on the host under the bundle, bound at INSIDE in the container."""

    host: Path
    rootfs: Path
    cid: str
    scripts: dict[str, str] = field(default_factory=dict)  # name -> script text

    def view(self, kind: Kind) -> str:
        """The directory as the hook of ``kind`` sees it (after pivot_root: the bind mount)."""
        return INSIDE if kind == "startContainer" else str(self.host)

    def script_path(self, kind: Kind, name: str) -> str:
        """The hook's ``path``: resolvable only in the namespace config.md assigns to ``kind``."""
        return f"{INSIDE}/{name}.sh" if kind in PATH_IN_CONTAINER else str(self.host / f"{name}.sh")

    def hook(
        self,
        kind: Kind,
        name: str,
        *,
        exit_code: int = 0,
        sleep: float | None = None,
        timeout: int | None = None,
        env: Sequence[str] | None = None,
        argv: Sequence[str] | None = None,
    ) -> Hook:
        """A recording hook. ``argv`` runs it as ``/bin/sh SCRIPT ...`` with exactly that argv.

        A script started through its ``#!`` line gets the kernel's argv (interpreter, script
        path, then args[1:]), so args[0] is not observable that way; with ``argv`` the hook's
        path is /bin/sh itself and ``argv[1]`` the script, and /proc/self/cmdline is the
        configured args, all of them. (busybox picks its applet from argv[0]'s basename, so an
        argv[0] for a hook run inside the container must end in ``/sh``.)
        """
        assert "'" not in str(self.host) and name.replace("-", "").isalnum(), name
        if sleep is not None:
            assert 0 < sleep <= MAX_SLEEP, "hook scripts sleep briefly, never unbounded"
            ending = f"exec /bin/sleep {sleep:g}"
        else:
            ending = f"exit {exit_code}"
        inspect = ""
        if kind not in RUNS_IN_CONTAINER:
            inspect = _INSPECT
        elif kind == "createContainer":
            inspect = _INSPECT_OWN_MOUNTS
        text = _RECORDER.format(
            kind=kind, name=name, dir=_q(self.view(kind)), ns_types=" ".join(NS_TYPES),
            inspect=inspect.format(
                ns_types=" ".join(NS_TYPES), rootfs=self.rootfs, inside=INSIDE, name=name,
                cid=self.cid,
            ),
            ending=ending,
        )  # fmt: skip
        self.scripts[name] = text
        script = self.script_path(kind, name)
        if argv is None:
            return Hook(
                path=script, args=[f"bulkhead-hook-{name}"], timeout=timeout,
                env=list(env) if env is not None else [f"BULKHEAD_HOOK={name}"],
            )  # fmt: skip
        assert len(argv) >= 1
        return Hook(
            path="/bin/sh", args=[argv[0], script, *argv[1:]], timeout=timeout,
            env=list(env) if env is not None else [f"BULKHEAD_HOOK={name}"],
        )  # fmt: skip

    def write_scripts(self) -> None:
        self.host.mkdir(mode=0o755, exist_ok=True)
        for name, text in self.scripts.items():
            path = self.host / f"{name}.sh"
            path.write_text(text)
            path.chmod(0o755)

    # --- reading what the hooks left ------------------------------------------------------------
    def _read(self, name: str, what: str) -> str | None:
        path = self.host / f"{name}.{what}"
        try:
            return path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return None

    def record(self, name: str) -> Record:
        cmdline = _nul_list(self._read(name, "init-cmdline"))
        cgroups = self._read(name, "cgroups")
        pid = self._read(name, "pid")
        return Record(
            name=name,
            stdin=self._read(name, "stdin"),
            argv=_nul_list(self._read(name, "argv")),
            environ=_nul_list(self._read(name, "environ")),
            ns=_ns_map(self._read(name, "ns")),
            init_ns=_ns_map(self._read(name, "init-ns")),
            init_cmdline=cmdline,
            init_sees_host=_flag(self._read(name, "init-sees-host")),
            init_mounts_done=_flag(self._read(name, "init-mounts-done")),
            mounts_done=_flag(self._read(name, "mounts-done")),
            cgroups=None if cgroups is None else cgroups.split(),
            pid=int(pid) if pid and pid.strip().isdigit() else None,
            parent_environ=_nul_list(self._read(name, "parent-environ")),
        )

    def ran(self, name: str) -> bool:
        return name in self.order()

    def order(self) -> list[str]:
        """Names in the order they ran (hooks and the user program), from the ``order`` file."""
        try:
            text = (self.host / "order").read_text()
        except FileNotFoundError:
            return []
        return [line.split()[-1] for line in text.splitlines() if line.strip()]


def program(script: str) -> tuple[str, ...]:
    """Container args that note the user program in the order file first, then run ``script``."""
    return ("sh", "-c", f"echo - {PROGRAM} >>{INSIDE}/order; {script}")


def host_namespaces() -> dict[str, str]:
    return {t: os.readlink(f"/proc/self/ns/{t}") for t in NS_TYPES}


def process_namespaces(pid: int) -> dict[str, str]:
    return {t: os.readlink(f"/proc/{pid}/ns/{t}") for t in NS_TYPES}


@dataclass
class Hooked:
    """A bundle whose config runs recording hooks; the container is not created yet."""

    ctr: Container
    hooks: HookDir

    @property
    def bundle(self) -> Bundle:
        return self.ctr.bundle


@contextlib.contextmanager
def hooked(
    containers: ContainerFactory,
    args: Sequence[str],
    plan: Sequence[tuple[Kind, str]] = (),
    *,
    build: Callable[[HookDir], Iterable[tuple[Kind, Hook]]] | None = None,
    env: Sequence[str] | None = None,
) -> Iterator[Hooked]:
    """A bundle with a recording hook for each ``(kind, name)`` of ``plan``, in that order.

    ``build(hook_dir)`` may return further ``(kind, Hook)`` pairs made with ``hook_dir.hook``
    (failing, sleeping or with particular args and env); they are added after the plan's
    hooks of the same kind, in the order returned. The bundle (and whatever container the test
    made from it) is removed on the way out. ``env`` replaces the user program's environment.
    """
    cid = containers.new_id()
    bundle_path = containers.base_dir / cid
    hook_dir = HookDir(host=bundle_path / "hooks", rootfs=bundle_path / "rootfs", cid=cid)
    entries: list[tuple[Kind, Hook]] = [(kind, hook_dir.hook(kind, name)) for kind, name in plan]
    if build is not None:
        entries += list(build(hook_dir))
    spec: Spec = containers.spec(args) if env is None else containers.spec(args, env=list(env))
    lists: dict[str, list[Hook]] = {}
    for kind, hook in entries:
        lists.setdefault(FIELD[kind], []).append(hook)
    spec.hooks = Hooks(**lists)
    assert spec.mounts is not None
    spec.mounts.append(
        Mount(destination=INSIDE, type="bind", source=str(hook_dir.host), options=["rbind", "rw"])
    )
    # The checks of where a path resolves need paths that exist on one side only.
    assert not Path(INSIDE).exists(), f"{INSIDE} exists on the host: the path checks need it absent"
    with containers.bundle(spec, cid=cid) as (_, bundle):
        assert bundle.path == bundle_path, (bundle.path, bundle_path)
        hook_dir.write_scripts()
        ctr = Container(cid, bundle, containers.client)
        try:
            yield Hooked(ctr, hook_dir)
        finally:
            ctr.close_stdio()
