"""A container's life as the engine runs it: ``run`` builds it (layers, files, network, bundle,
then the monitor, which calls the runtime), ``stop``/``kill`` signal it through the runtime,
``release`` gives back what only a running container needs, ``remove`` the rest.

Every step of ``run`` registers its undo before the next step starts: a failure anywhere leaves
nothing behind (no layer, mount, netns, veth, address, cgroup, record).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_runtime.engine import containers, spec
from reference_runtime.engine.containers import Container, ContainerStore
from reference_runtime.engine.errors import EngineError
from reference_runtime.engine.layout import Layout
from reference_runtime.engine.network.endpoint import MODES as NETWORK_MODES
from reference_runtime.engine.runtime import OciRuntime, cgroup_v2

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # docker's container name rule
MONITOR_START_TIMEOUT = 60.0


@dataclass
class RunOptions:
    image: str
    cmd: list[str] = field(default_factory=list)
    name: str | None = None
    hostname: str | None = None
    env: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    auto_remove: bool = False
    runtime: str | None = None
    network: str = "bridge"
    read_only: bool = False
    memory: str | None = None
    pids_limit: int | None = None


@dataclass(frozen=True)
class Settings:
    """The engine-wide choices (global CLI options)."""

    layout: Layout
    runtime: str = "runc"
    cgroup_parent: str = "/bulkhead"
    subnet: str = "172.30.0.0/16"


def network(settings: Settings) -> Any:
    from reference_runtime.engine.network import Network  # pyroute2 costs ~140 ms: when needed

    return Network(settings.layout, subnet=settings.subnet)


def validate(opts: RunOptions) -> tuple[list[Any], int | None]:
    """Everything that can be refused before anything is made."""
    from reference_runtime.engine.network.ports import parse_publish

    if opts.network not in NETWORK_MODES:
        raise EngineError(f"failed to create container: --network {opts.network}: "
                          f"expected one of {', '.join(NETWORK_MODES)}")  # fmt: skip
    if opts.name is not None and not NAME.match(opts.name):
        raise EngineError(f"failed to create container: name {opts.name!r} must match "
                          "[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # fmt: skip
    bindings = [parse_publish(p) for p in opts.publish]
    if (bindings or opts.publish_all) and opts.network != "bridge":
        raise EngineError("failed to create container: publishing ports needs --network bridge")
    if opts.pids_limit is not None and opts.pids_limit <= 0:
        raise EngineError(f"failed to parse --pids-limit {opts.pids_limit}: must be more than 0")
    memory = spec.parse_size(opts.memory, "--memory") if opts.memory is not None else None
    return bindings, memory


def run(settings: Settings, opts: RunOptions, *, foreground: bool) -> tuple[Container, Any]:
    """Makes and starts the container; returns it and, for a foreground run, the status pipe
    the monitor will write "exit N" to."""
    from reference_runtime.engine.images.store import ImageStore
    from reference_runtime.engine.network.ports import PortBinding
    from reference_runtime.engine.overlay2 import Overlay2

    layout = settings.layout
    bindings, memory = validate(opts)
    store = ContainerStore(layout)
    with layout.locked(), contextlib.ExitStack() as undo:
        image = ImageStore(layout).get(opts.image)
        if opts.name is not None and (holder := store.name_taken(opts.name)):
            raise EngineError(f"failed to create container: the name {opts.name} is in use "
                              f"by container {holder[:12]}")  # fmt: skip
        runtime = OciRuntime.open(opts.runtime or settings.runtime, layout)
        image_config = image.config.get("config") or {}
        if opts.publish_all:
            for port in sorted(image_config.get("ExposedPorts") or {}):
                number, _, proto = port.partition("/")
                bindings.append(PortBinding("127.0.0.1", 0, int(number), proto or "tcp"))
        cid = containers.new_id()
        name = opts.name or f"bh_{cid[:12]}"
        hostname = opts.hostname or cid[:12]
        directory = store.make_dir(cid)
        undo.callback(containers.remove_dir, directory)

        overlay = Overlay2(layout)
        layers = overlay.create_container_layers(image.top_layer)
        undo.callback(overlay.remove_container_layers, layers.rw_id)
        rootfs = overlay.mount(layers.rw_id)

        net = network(settings)
        endpoint = net.connect(cid, opts.network)
        undo.callback(net.disconnect, cid)

        files = containers.write_files(directory, hostname=hostname, ip=endpoint.ip,
                                       resolv_conf=containers.host_resolv_conf())  # fmt: skip
        shm = directory / "mounts" / "shm"
        shm.mkdir(parents=True)
        _mount_shm(shm)
        undo.callback(containers.unmount, shm)

        uid, gid, groups = spec.resolve_user(str(image_config.get("User") or ""), rootfs)
        run_spec = spec.RunSpec(
            args=spec.process_args(image_config, opts.cmd),
            env=spec.environment(image_config, opts.env, hostname),
            cwd=str(image_config.get("WorkingDir") or "/"),
            uid=uid, gid=gid, additional_gids=groups, hostname=hostname,
            read_only=opts.read_only, memory=memory, pids_limit=opts.pids_limit,
        )  # fmt: skip
        paths = spec.ContainerPaths(files["hostname"], files["hosts"], files["resolv.conf"], shm)
        cgroups_path = f"{settings.cgroup_parent.rstrip('/')}/{cid}"
        config = spec.oci_config(run_spec, rootfs=rootfs, netns=endpoint.netns, paths=paths,
                                 cgroups_path=cgroups_path, cgroup_v2=cgroup_v2())  # fmt: skip
        bundle = layout.bundles / cid
        bundle.mkdir(parents=True)
        undo.callback(shutil.rmtree, bundle, True)
        containers.write_json(bundle / "config.json", config)

        record = _record(cid, name, image, run_spec, opts, directory, files, shm, endpoint)
        record["Bulkhead"] = {
            "Runtime": runtime.name, "RuntimeBinary": str(runtime.binary),
            "Bundle": str(bundle), "RwLayer": layers.rw_id, "CgroupsPath": cgroups_path,
            "PortBindings": [b.__dict__ for b in bindings],
        }  # fmt: skip
        hostconfig = _hostconfig(opts, bindings, memory, runtime, settings, config)
        container = Container(directory, record, hostconfig)
        container.save()
        status = _spawn_monitor(layout, cid)
        line = status.readline().strip()
        if line != "ok":
            status.close()
            reason = line.removeprefix("error ") or "the monitor exited without a word"
            raise EngineError(reason)
        undo.pop_all()
    if not foreground:
        status.close()
        status = None
    return container, status


def _spawn_monitor(layout: Layout, cid: str) -> Any:
    """The monitor, a fresh interpreter in a session of its own (nothing of the CLI's state or
    threads is carried into a process that outlives it); it answers on a pipe."""
    read_fd, write_fd = os.pipe()
    # Its own stderr (a traceback, should it ever crash) goes to monitor.log beside the record.
    log = os.open(layout.containers / cid / "monitor.log",
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)  # fmt: skip
    try:
        subprocess.Popen(
            [sys.executable, "-m", "reference_runtime.engine.monitor",
             str(layout.root), str(layout.exec_root), cid, str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            pass_fds=(write_fd,), start_new_session=True, close_fds=True,
        )  # fmt: skip
    finally:
        os.close(write_fd)
        os.close(log)
    return os.fdopen(read_fd, "r")


def _mount_shm(path: Path) -> None:
    from reference_runtime.linux import libc

    # MS_NOSUID | MS_NODEV | MS_NOEXEC, as docker mounts the container's shm.
    libc.mount("shm", str(path), "tmpfs", 0x2 | 0x4 | 0x8, f"mode=1777,size={spec.SHM_SIZE}")


def _record(
    cid: str, name: str, image: Any, run_spec: spec.RunSpec, opts: RunOptions,
    directory: Path, files: dict[str, Path], shm: Path, endpoint: Any,
) -> dict[str, Any]:  # fmt: skip
    image_config = image.config.get("config") or {}
    return {
        "ID": cid,
        "Created": containers.now(),
        "Path": run_spec.args[0],
        "Args": run_spec.args[1:],
        "Config": {
            "Hostname": run_spec.hostname, "Domainname": "",
            "User": str(image_config.get("User") or ""), "Env": run_spec.env,
            "Cmd": opts.cmd or list(image_config.get("Cmd") or []),
            "Entrypoint": image_config.get("Entrypoint"), "Image": opts.image,
            "WorkingDir": run_spec.cwd, "ExposedPorts": image_config.get("ExposedPorts") or {},
            "Labels": {},
        },
        "State": {
            "Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "Image": image.id,
        "Name": "/" + name,
        "Driver": "overlay2",
        "LogPath": str(directory / f"{cid}-json.log"),
        "ResolvConfPath": str(files["resolv.conf"]),
        "HostnamePath": str(files["hostname"]),
        "HostsPath": str(files["hosts"]),
        "ShmPath": str(shm),
        "NetworkSettings": network_settings(endpoint),
    }  # fmt: skip


def network_settings(endpoint: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "SandboxKey": str(endpoint.netns), "Ports": {},
        "IPAddress": endpoint.ip or "", "IPPrefixLen": endpoint.prefixlen or 0,
        "Gateway": endpoint.gateway or "", "MacAddress": endpoint.mac or "",
        "Networks": {},
    }  # fmt: skip
    if endpoint.mode == "bridge":
        settings["Networks"]["bridge"] = {
            "IPAddress": endpoint.ip, "IPPrefixLen": endpoint.prefixlen,
            "Gateway": endpoint.gateway, "MacAddress": endpoint.mac,
            "EndpointID": endpoint.host_veth,
        }  # fmt: skip
    else:
        settings["Networks"]["none"] = {"IPAddress": "", "Gateway": "", "MacAddress": ""}
    return settings


def _hostconfig(
    opts: RunOptions, bindings: list[Any], memory: int | None, runtime: OciRuntime,
    settings: Settings, config: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        port_bindings.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip, "HostPort": str(b.host_port) if b.host_port else ""}
        )
    linux = config["linux"]
    return {
        "NetworkMode": opts.network, "PortBindings": port_bindings,
        "PublishAllPorts": opts.publish_all, "AutoRemove": opts.auto_remove,
        "ReadonlyRootfs": opts.read_only, "Memory": memory or 0,
        "PidsLimit": opts.pids_limit, "Runtime": runtime.name,
        "CgroupParent": settings.cgroup_parent, "Privileged": False,
        "ShmSize": spec.SHM_SIZE, "CapAdd": None, "CapDrop": None,
        "MaskedPaths": linux["maskedPaths"], "ReadonlyPaths": linux["readonlyPaths"],
        "LogConfig": {"Type": "json-file", "Config": {}},
    }  # fmt: skip


# --- after the container ran ---------------------------------------------------------------
def release(layout: Layout, container: Container, runtime: OciRuntime | None = None) -> list[str]:
    """What a stopped container no longer needs: the runtime's container, the rootfs and
    /dev/shm mounts, the network. Each step is tried whatever the others did; the errors are
    returned (and recorded in State.Error) so one stuck step does not keep the rest."""
    from reference_runtime.engine.overlay2 import Overlay2

    extra = container.extra
    errors: list[str] = []
    steps: list[Callable[[], object]] = []
    if runtime is None:
        with contextlib.suppress(EngineError):
            runtime = OciRuntime.open(str(extra["Runtime"]), layout)
    if runtime is not None:
        steps.append(lambda: runtime.delete(container.id))
    steps += [
        lambda: Overlay2(layout).unmount(str(extra["RwLayer"])),
        lambda: containers.unmount(container.shm),
        lambda: network(Settings(layout)).disconnect(container.id),
        lambda: shutil.rmtree(layout.bundles / container.id, ignore_errors=True),
    ]
    for step in steps:
        try:
            step()
        except (EngineError, OSError) as exc:
            errors.append(str(exc))
    if errors:
        container.state["Error"] = "; ".join(errors)
    return errors


def remove_files(layout: Layout, container: Container) -> None:
    """The container's layers and directory (release() came first)."""
    from reference_runtime.engine.overlay2 import Overlay2

    Overlay2(layout).remove_container_layers(str(container.extra["RwLayer"]))
    containers.remove_dir(container.dir)


def monitor_alive(container: Container) -> bool:
    from reference_runtime.linux import proc

    pid = container.extra.get("MonitorPid")
    return isinstance(pid, int) and proc.is_alive(pid, container.extra.get("MonitorStart"))


def wait_monitor(container: Container, timeout: float) -> bool:
    """Whether the monitor exited (it has recorded the exit and released) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while monitor_alive(container):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def signal(settings: Settings, container: Container, sig: str) -> None:
    if not container.running:
        raise EngineError(f"failed to signal container {container.name}: it is not running")
    OciRuntime.open(str(container.extra["Runtime"]), settings.layout).kill(container.id, sig)


def stop(settings: Settings, container: Container, timeout: float | None) -> None:
    """docker's stop: SIGTERM, then SIGKILL after ``timeout`` seconds (at once for None, as
    ``rm -f``); returns once the monitor has recorded the exit."""
    if not container.running:
        return
    runtime = OciRuntime.open(str(container.extra["Runtime"]), settings.layout)
    if timeout is not None:
        runtime.kill(container.id, "TERM", check=False)
        if wait_monitor(container, timeout):
            return
    runtime.kill(container.id, "KILL", check=False)
    if not wait_monitor(container, 30.0):
        raise EngineError(f"failed to stop container {container.name}: its monitor "
                          f"(pid {container.extra.get('MonitorPid')}) did not finish")  # fmt: skip


def remove(settings: Settings, ref: str, *, force: bool) -> str:
    store = ContainerStore(settings.layout)
    container = store.get(ref)
    if container.running:
        if not force:
            raise EngineError(f"failed to remove container {container.name}: it is running "
                              "(stop it first, or use -f)")  # fmt: skip
        stop(settings, container, timeout=None)
    with settings.layout.locked():
        if not (container.dir / containers.CONFIG).exists():
            return container.id  # run --rm: its monitor removed it on the way out
        container.reload()
        if container.running:  # its monitor died: nothing else will clean up
            from reference_runtime.engine import gc

            gc.recover(settings.layout, container)
        release(settings.layout, container)
        remove_files(settings.layout, container)
    return container.id
