"""bpf(2): load a cgroup device program and attach it to a cgroup (cgroup v2 device control).

Only the two commands the device controller needs. ``union bpf_attr`` is laid out as in
<linux/bpf.h>; the kernel accepts a shorter attr than its own and zero-fills the rest
(kernel/bpf/syscall.c, bpf_check_uarg_tail_zero), so each struct stops at its last used field.
"""

from __future__ import annotations

import ctypes
import os

from reference_runtime.errors import SyscallError

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
# bpf(2) has no glibc wrapper: <asm/unistd_64.h> numbers.
_SYS_BPF = {"x86_64": 321, "aarch64": 280}

# <linux/bpf.h>
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type
# Let programs of the cgroup's ancestors (a delegating manager's) still run: each must allow.
BPF_F_ALLOW_MULTI = 1 << 1
# A cgroup device program calls no GPL-only helper, so any license string loads.
LICENSE = b"Apache-2.0"
INSN_SIZE = 8


class _ProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _ProgAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


def _bpf(cmd: int, attr: ctypes.Structure, what: str, path: str) -> int:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise SyscallError(38, "bpf", f"{path} (no bpf syscall number for this machine)")
    result = _libc.syscall(
        ctypes.c_long(number), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.sizeof(attr)
    )
    if result == -1:
        raise SyscallError(ctypes.get_errno(), what, path)
    return int(result)


def load_device_program(code: bytes, name: str = "bulkhead_dev") -> int:
    """BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd. The verifier's
    log is asked for only after a refusal, to say why (EACCES/EINVAL alone would not)."""
    if len(code) % INSN_SIZE:
        raise ValueError("a BPF program is a whole number of 8-byte instructions")
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(LICENSE)
    attr = _ProgLoad()
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE
    attr.insn_cnt = len(code) // INSN_SIZE
    attr.insns = ctypes.addressof(insns)
    attr.license = ctypes.addressof(license_)
    attr.prog_name = name.encode()[:15]
    attr.expected_attach_type = BPF_CGROUP_DEVICE
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)", name)
    except SyscallError as first:
        log = ctypes.create_string_buffer(1 << 16)
        attr.log_level = 1
        attr.log_size = len(log)
        attr.log_buf = ctypes.addressof(log)
        try:
            return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)", name)
        except SyscallError:
            text = log.value.decode(errors="replace").strip().splitlines()
            detail = f"{name}: verifier: {text[-1]}" if text else name
            raise SyscallError(first.errno or 0, "bpf(BPF_PROG_LOAD)", detail) from None


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    """BPF_PROG_ATTACH of ``prog_fd`` to the cgroup directory (BPF_CGROUP_DEVICE, ALLOW_MULTI).
    The attachment holds the program: the caller may close ``prog_fd`` afterwards, and removing
    the cgroup detaches it."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = _ProgAttach()
        attr.target_fd = fd
        attr.attach_bpf_fd = prog_fd
        attr.attach_type = BPF_CGROUP_DEVICE
        attr.attach_flags = BPF_F_ALLOW_MULTI
        _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)", cgroup_dir)
    finally:
        os.close(fd)
