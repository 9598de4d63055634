"""``features``: what this runtime implements (features.md), and only that.

Everything refused with a clear error (AppArmor, SELinux, Intel RDT) is absent or disabled
here.
"""

from __future__ import annotations

import os

from reference_runtime.cli.args import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.cli.main import Globals


# All six kinds run (process/hooks.py), prestart too although config.md deprecates it.
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def seccomp_features() -> dict[str, Any]:
    from reference_runtime.linux import seccomp

    try:
        seccomp._library()
    except Exception:
        return {"enabled": False}
    actions = sorted(seccomp.ACTIONS)
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            kernel = f.read().split()
    except OSError:
        kernel = []
    if kernel and "user_notif" not in kernel:
        # seccomp(2): this kernel cannot notify (Linux < 5.0), so the listener cannot work.
        actions.remove("SCMP_ACT_NOTIFY")
    return {
        "enabled": True,
        "actions": actions,
        "operators": sorted(seccomp.OPERATORS),
        "archs": list(seccomp.ARCHITECTURES),
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": sorted(seccomp.FLAGS),
    }


def features() -> dict[str, Any]:
    from reference_runtime.linux.capabilities import CAPABILITIES
    from reference_runtime.linux.constants import MPOL_FLAGS, MPOL_MODES
    from reference_runtime.rootfs.options import FLAGS, PROPAGATION, RECURSIVE
    from reference_runtime.spec.validate import SUPPORTED_NAMESPACES

    mount_options = sorted({*FLAGS, *PROPAGATION, *RECURSIVE, "bind", "rbind"})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": list(HOOKS),
        "mountOptions": mount_options,
        "linux": {
            "namespaces": list(SUPPORTED_NAMESPACES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
                "rdma": False,
            },
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            # Recognised names (features-linux.md), whether or not this kernel has them.
            "memoryPolicy": {"modes": list(MPOL_MODES), "flags": list(MPOL_FLAGS)},
            # Idmapped bind mounts (rootfs/idmap.py); other mounts with mappings are refused,
            # a partial implementation features-linux.md still counts as enabled.
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {"org.bulkhead.runtime.version": "0.1.0"},
    }


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime import jsonio

    parse(args, {})
    os.write(1, (jsonio.dumps(features(), indent=2) + "\n").encode())
    return 0
