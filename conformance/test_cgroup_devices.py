"""The device allow-list (config-linux.md "Allowed Device list"): linux.resources.devices rules,
applied in the order listed, decide which device nodes the container may open.

The device is /dev/kmsg (c 1:11): not one of the default devices a runtime always allows, so
its fate is the rules' alone, and opening it for writing is harmless (``bulkhead-probe
open-write`` opens and closes, never writing a byte). The device cgroup refuses an open with
EPERM before any driver sees it (the kernel's devcgroup check in inode permission), so EPERM
is the witness of a denial; /dev/null, a default device, is opened the same way in every
container as the control that the probe can open what is allowed.
"""

from __future__ import annotations

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.spec import Device, DeviceCgroup
from conformance._support import sh

KMSG = Device(type="c", path="/dev/kmsg", major=1, minor=11, file_mode=0o666, uid=0, gid=0)
DENY_ALL = DeviceCgroup(allow=False, access="rwm")
ALLOW_KMSG = DeviceCgroup(allow=True, type="c", major=1, minor=11, access="rw")
PROBE = "bulkhead-probe open-write /dev/kmsg; bulkhead-probe open-write /dev/null"


def _opens(containers: ContainerFactory, rules: list[DeviceCgroup]) -> tuple[str, str]:
    """What opening /dev/kmsg and /dev/null for writing gave, under ``rules``."""
    spec = containers.spec(sh(PROBE))
    assert spec.linux is not None and spec.linux.resources is not None
    spec.linux.devices = [KMSG]
    spec.linux.resources.devices = rules
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    kmsg, null = (line.strip() for line in lines)
    assert null == "result=ok", f"the default device /dev/null did not open: {null}"
    return kmsg, null


@pytest.mark.spec(
    "config-linux.allowed-device-list.1",
    "config-linux.allowed-device-list.apply-device-cgroup-rules",
)
def test_device_rules_apply_in_the_order_listed(containers: ContainerFactory) -> None:
    # Deny everything, then allow the device: it opens.
    allowed, _ = _opens(containers, [DENY_ALL, ALLOW_KMSG])
    assert allowed == "result=ok", f"[deny all, allow c 1:11 rw]: /dev/kmsg gave {allowed}"
    # The same two rules the other way round: the later deny-all takes the allowance back.
    denied, _ = _opens(containers, [ALLOW_KMSG, DENY_ALL])
    assert denied == "result=error errno=EPERM", (
        f"[allow c 1:11 rw, deny all]: /dev/kmsg gave {denied}"
    )


@pytest.mark.spec("config-linux.allowed-device-list.apply-device-cgroup-rules")
def test_a_device_no_rule_allows_cannot_be_opened(containers: ContainerFactory) -> None:
    # The node exists (linux.devices made it), but only the runtime's defaults are allowed.
    denied, _ = _opens(containers, [DENY_ALL])
    assert denied == "result=error errno=EPERM", f"[deny all]: /dev/kmsg gave {denied}"


@pytest.mark.spec("config-linux.allowed-device-list.apply-device-cgroup-rules")
def test_the_access_of_a_rule_is_respected(containers: ContainerFactory) -> None:
    # Read access only: the open for writing is denied (the control is the rw rule above).
    rule = DeviceCgroup(allow=True, type="c", major=1, minor=11, access="r")
    denied, _ = _opens(containers, [DENY_ALL, rule])
    assert denied == "result=error errno=EPERM", f"[deny all, allow c 1:11 r]: {denied}"
    rule = DeviceCgroup(allow=True, type="c", major=1, minor=11, access="w")
    allowed, _ = _opens(containers, [DENY_ALL, rule])
    assert allowed == "result=ok", f"[deny all, allow c 1:11 w]: /dev/kmsg gave {allowed}"
