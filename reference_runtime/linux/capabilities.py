"""Capability numbers (<linux/capability.h>) and the calls that set the five sets.

Order matters (capabilities(7)): the bounding set is reduced while CAP_SETPCAP is still
effective; the uid change keeps the permitted set only under PR_SET_KEEPCAPS; capset then sets
effective/permitted/inheritable; ambient capabilities are raised last, since each must already
be permitted and inheritable.
"""

from __future__ import annotations

from reference_runtime.linux import constants as c
from reference_runtime.linux import libc

CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        (
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
            "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
        )
    )
}  # fmt: skip

CAP_SETPCAP = CAPABILITIES["CAP_SETPCAP"]
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def mask(names: list[str]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << CAPABILITIES[name]
    return bits


def drop_bounding(keep: int, last: int) -> None:
    for cap in range(last + 1):
        if not keep & (1 << cap) and libc.prctl(c.PR_CAPBSET_READ, cap):
            libc.prctl(c.PR_CAPBSET_DROP, cap)


def set_capabilities(sets: dict[str, int], last: int) -> None:
    """Applies the sets (each a bit mask); bits the kernel does not know are ignored."""
    known = (1 << (last + 1)) - 1
    effective = sets.get("effective", 0) & known
    permitted = sets.get("permitted", 0) & known
    inheritable = sets.get("inheritable", 0) & known
    libc.capset(effective, permitted, inheritable)
    libc.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_CLEAR_ALL)
    ambient = sets.get("ambient", 0) & known
    for cap in range(last + 1):
        if ambient & (1 << cap):
            libc.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_RAISE, cap)
