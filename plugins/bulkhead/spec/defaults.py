"""Default configuration values and the baseline spec every test starts from.

`default_spec()` is what `runc spec` writes (runc's libcontainer/specconv/example.go), with two
deliberate changes: no terminal (tests capture stdio through pipes) and Docker's current masked
and read-only path lists, so the suite checks the hardening users actually run with.
"""

from __future__ import annotations

from collections.abc import Sequence

from bulkhead.spec.models import (
    Capabilities,
    DeviceCgroup,
    Linux,
    Mount,
    Namespace,
    NamespaceType,
    Process,
    Resources,
    Rlimit,
    Root,
    Spec,
    User,
)

# The PATH that `runc spec` and Docker put in the environment (moby oci.DefaultPathEnv).
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker/Moby's current masked paths (moby daemon/pkg/oci/defaults.go; research/security.md §2).
# /proc/interrupts was added for GHSA-6fw5-f8r9-fgfm, /sys/devices/virtual/powercap for
# GHSA-jq35-85cj-fj4p. Docker also masks /sys/devices/system/cpu/cpu<N>/thermal_throttle for
# each CPU, computed at daemon start; that per-host list is left out so the config is portable.
DOCKER_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

# Read-only paths shared by Docker, containerd and `runc spec` (research/security.md §2).
DOCKER_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# `runc spec`'s bounding/effective/permitted set (research/security.md §3).
RUNC_DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
)

# Docker/Moby and containerd's default set (containerd defaultUnixCaps; research/security.md §3).
# A superset of RUNC_DEFAULT_CAPABILITIES. Inheritable stays empty (CVE-2022-29162 lineage).
DOCKER_DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)

# `runc spec`'s namespaces (research/security.md §2). runc adds "cgroup" only on a pure cgroup v2
# host; the build machine is hybrid (design.md §5), so the portable default leaves it out.
DEFAULT_NAMESPACES: tuple[NamespaceType, ...] = ("pid", "network", "ipc", "uts", "mount")

# `runc spec`'s only rlimit. Also the ceiling for NOFILE here: without CAP_SYS_RESOURCE a hard
# limit cannot be raised (design.md §5), and 1024 is below every usual host hard limit.
DEFAULT_NOFILE_LIMIT = 1024


def default_mounts() -> list[Mount]:
    """The mounts of `runc spec`, in its order (config-linux.md "Default Filesystems")."""
    return [
        Mount(destination="/proc", type="proc", source="proc"),
        Mount(
            destination="/dev",
            type="tmpfs",
            source="tmpfs",
            options=["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount(
            destination="/dev/pts",
            type="devpts",
            source="devpts",
            # gid=5 is the conventional "tty" group; newinstance gives a private pty namespace.
            options=["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount(
            destination="/dev/shm",
            type="tmpfs",
            source="shm",
            options=["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        Mount(
            destination="/dev/mqueue",
            type="mqueue",
            source="mqueue",
            options=["nosuid", "noexec", "nodev"],
        ),
        Mount(
            destination="/sys",
            type="sysfs",
            source="sysfs",
            options=["nosuid", "noexec", "nodev", "ro"],
        ),
        Mount(
            destination="/sys/fs/cgroup",
            type="cgroup",
            source="cgroup",
            # ro guards against CVE-2023-25809-style writes to the host hierarchy.
            options=["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]


def default_spec(
    args: Sequence[str] = ("sh",),
    *,
    rootfs: str = "rootfs",
    readonly: bool = False,
    hostname: str = "bulkhead",
    cgroups_path: str | None = None,
    env: Sequence[str] | None = None,
    cwd: str = "/",
) -> Spec:
    """A fresh `runc spec`-like config with Docker's masked and read-only paths.

    `env` replaces the default environment (just PATH) entirely; pass DEFAULT_PATH_ENV along
    if the program is looked up by name. Every call returns new objects, so callers may mutate.
    """
    capabilities = list(RUNC_DEFAULT_CAPABILITIES)
    return Spec(
        process=Process(
            terminal=False,
            user=User(uid=0, gid=0),
            args=list(args),
            env=list(env) if env is not None else [DEFAULT_PATH_ENV],
            cwd=cwd,
            capabilities=Capabilities(
                bounding=list(capabilities),
                effective=list(capabilities),
                permitted=list(capabilities),
            ),
            rlimits=[
                Rlimit(type="RLIMIT_NOFILE", soft=DEFAULT_NOFILE_LIMIT, hard=DEFAULT_NOFILE_LIMIT)
            ],
            no_new_privileges=True,
        ),
        root=Root(path=rootfs, readonly=readonly),
        hostname=hostname,
        mounts=default_mounts(),
        linux=Linux(
            namespaces=[Namespace(type=t) for t in DEFAULT_NAMESPACES],
            cgroups_path=cgroups_path,
            # Deny every device, as `runc spec` does; runtimes add allow rules themselves for
            # the default devices they create (config-linux.md "Default Devices").
            resources=Resources(devices=[DeviceCgroup(allow=False, access="rwm")]),
            masked_paths=list(DOCKER_MASKED_PATHS),
            readonly_paths=list(DOCKER_READONLY_PATHS),
        ),
    )
