"""``features``: what this runtime implements (features.md), and only that.

Everything refused with a clear error (seccomp listeners, idmapped mounts, AppArmor,
SELinux, Intel RDT, net devices) is absent or disabled here.
"""

from __future__ import annotations

import os

from reference_runtime.cli.args import parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from reference_runtime.cli.main import Globals


def seccomp_features() -> dict[str, Any]:
    from reference_runtime.linux import seccomp

    try:
        seccomp._library()
    except Exception:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPERATORS),
        "archs": list(seccomp.ARCHITECTURES),
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": sorted(seccomp.FLAGS),
    }


def features() -> dict[str, Any]:
    from reference_runtime.linux.capabilities import CAPABILITIES
    from reference_runtime.rootfs.options import FLAGS, PROPAGATION, RECURSIVE
    from reference_runtime.spec.validate import SUPPORTED_NAMESPACES

    mount_options = sorted({*FLAGS, *PROPAGATION, *RECURSIVE, "bind", "rbind"})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": [],
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
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.bulkhead.runtime.version": "0.1.0"},
    }


def run(g: Globals, args: list[str]) -> int:
    from reference_runtime import jsonio

    parse(args, {})
    os.write(1, (jsonio.dumps(features(), indent=2) + "\n").encode())
    return 0
