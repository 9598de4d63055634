"""The engine's default seccomp profile.

Docker's default profile (moby/profiles seccomp/default.json) is an allowlist; what a container
notices of it are its refusals, and those are what this profile reproduces, written as a
denylist over an ALLOW default: the syscalls the default profile never allows or allows only
with a capability the default set lacks answer EPERM, namespace-creating ``clone`` flags answer
EPERM, and ``clone3`` answers ENOSYS so that libc falls back to ``clone``, whose flags a filter
can see (research/security.md §4). A denylist cannot refuse syscalls newer than its list; that
is the price of not shipping a copy of someone else's allowlist, and docs/engine.md says so.
"""

from __future__ import annotations

from typing import Any

EPERM = 1
ENOSYS = 38

# Never allowed, or allowed only with CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME,
# CAP_SYS_PACCT, CAP_SYS_RAWIO, CAP_SYSLOG, CAP_DAC_READ_SEARCH or CAP_SYS_PTRACE (none of
# which a default container has). Names only from kernel 6.1 / libseccomp 2.5, which every
# runtime here knows.
REFUSED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mount", "mount_setattr", "move_mount", "nfsservctl", "open_by_handle_at", "open_tree",
    "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "query_module",
    "quotactl", "reboot", "request_key", "setns", "settimeofday", "swapoff", "swapon", "syslog",
    "umount2", "unshare", "uselib", "userfaultfd", "vm86", "vm86old",
)  # fmt: skip

# clone(2)'s flags (x86_64: the first argument) that make namespaces: <linux/sched.h>.
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
# socket(2) families the current default profile refuses (<linux/socket.h>).
AF_ALG = 38
AF_VSOCK = 40


def default_profile() -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"names": list(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    # One rule per flag: a rule's conditions are ANDed, rules are ORed (config-linux.md seccomp),
    # and "any of these bits" is an OR of single-bit MASKED_EQ tests.
    for bit in NAMESPACE_FLAGS.values():
        rules.append({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}],
        })  # fmt: skip
    for family in (AF_ALG, AF_VSOCK):
        rules.append({
            "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}],
        })  # fmt: skip
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    }
