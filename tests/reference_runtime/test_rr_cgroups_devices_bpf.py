"""The cgroup v2 device program: golden encodings, a small interpreter that runs the program over
requests and compares with the v1 list's meaning, and (as root, where cgroup2 is mounted) the
kernel's verifier and enforcement."""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_runtime.cgroups import devices_bpf as d
from reference_runtime.cgroups.mapping import DEFAULT_ALLOWED_DEVICES, device_program
from reference_runtime.errors import SpecError

DENY_ALL: dict[str, Any] = {"allow": False, "access": "rwm"}
KMSG_RW: dict[str, Any] = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}


def run(code: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Interprets the subset of eBPF the encoder emits (instruction-set.rst), on one context."""
    acc = sum(d.ACCESS_BITS[a] for a in access)
    ctx = struct.pack("<III", (acc << 16) | d.TYPES[dev_type], major, minor)
    insns = [d.INSN.unpack_from(code, i) for i in range(0, len(code), 8)]
    regs = [0] * 11
    regs[1] = -1  # the context pointer: only loads from it are allowed
    pc = steps = 0
    mask32 = 0xFFFFFFFF
    while True:
        steps += 1
        assert steps < 10_000, "the program loops"
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if op == d.LDX_MEM_W:
            assert regs[src] == -1 and off % 4 == 0 and 0 <= off <= 8
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == d.MOV64_K:
            regs[dst] = imm & 0xFFFFFFFFFFFFFFFF
        elif op == d.MOV64_X:
            regs[dst] = regs[src]
        elif op == d.AND32_K:
            regs[dst] = regs[dst] & imm & mask32
        elif op == d.RSH32_K:
            regs[dst] = (regs[dst] & mask32) >> imm
        elif op == d.JA:
            pc += off
        elif op in (d.JEQ32_K, d.JNE32_K):
            equal = regs[dst] & mask32 == imm & mask32
            if equal == (op == d.JEQ32_K):
                pc += off
        elif op == d.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unknown opcode {op:#x} at {pc - 1}")
        assert 0 <= pc < len(insns), f"jumped out of the program to {pc}"


def reachable(code: bytes) -> set[int]:
    """Instruction indexes reachable from the start (the verifier refuses dead code)."""
    insns = [d.INSN.unpack_from(code, i) for i in range(0, len(code), 8)]
    seen: set[int] = set()
    todo = [0]
    while todo:
        pc = todo.pop()
        if pc in seen:
            continue
        seen.add(pc)
        op, _, off, _ = insns[pc]
        if op == d.EXIT:
            continue
        if op == d.JA:
            todo.append(pc + 1 + off)
        elif op in (d.JEQ32_K, d.JNE32_K):
            todo += [pc + 1, pc + 1 + off]
        else:
            todo.append(pc + 1)
    return seen


def test_golden_program_for_deny_all_then_allow_one_device() -> None:
    rules = d.parse_rules([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11,
                                      "access": "r"}])  # fmt: skip
    code = d.program(rules)
    expected = [
        (0x61, 0x12, 0, 0), (0xBF, 0x23, 0, 0), (0x54, 0x03, 0, 0xFFFF), (0x74, 0x02, 0, 16),
        (0x61, 0x14, 4, 0), (0x61, 0x15, 8, 0),
        # read: the allow of c 1:11, then the deny-all
        (0xBF, 0x26, 0, 0), (0x54, 0x06, 0, 2), (0x16, 0x06, 6, 0),
        (0x56, 0x03, 3, 2), (0x56, 0x04, 2, 1), (0x56, 0x05, 1, 11), (0x05, 0x00, 2, 0),
        (0xB7, 0x00, 0, 0), (0x95, 0x00, 0, 0),
        # write, then mknod: only the deny-all holds them
        (0xBF, 0x26, 0, 0), (0x54, 0x06, 0, 4), (0x16, 0x06, 2, 0),
        (0xB7, 0x00, 0, 0), (0x95, 0x00, 0, 0),
        (0xBF, 0x26, 0, 0), (0x54, 0x06, 0, 1), (0x16, 0x06, 2, 0),
        (0xB7, 0x00, 0, 0), (0x95, 0x00, 0, 0),
        (0xB7, 0x00, 0, 1), (0x95, 0x00, 0, 0),
    ]  # fmt: skip
    assert [d.INSN.unpack_from(code, i) for i in range(0, len(code), 8)] == expected


def test_golden_program_of_no_rules_denies_everything() -> None:
    code = d.program([])
    assert len(code) == 8 * (6 + 3 * 5 + 2)
    assert all(run(code, t, 1, 3, a) == 0 for t in "cb" for a in ("r", "w", "m", "rwm"))


# Rule lists whose meaning the program must reproduce, defaults appended as the runtime does.
RULE_LISTS: dict[str, list[dict[str, Any]]] = {
    "deny-all": [DENY_ALL],
    "deny-all-then-allow": [DENY_ALL, KMSG_RW],
    "allow-then-deny-all": [KMSG_RW, DENY_ALL],
    "allow-all": [{"allow": True, "access": "rwm"}],
    "allow-all-then-deny-write": [{"allow": True}, {"allow": False, "type": "c", "major": 1,
                                                    "minor": 11, "access": "w"}],
    "major-wildcard": [DENY_ALL, {"allow": True, "type": "b", "major": 8, "access": "r"}],
    "minor-wildcard-by-minus-one": [DENY_ALL, {"allow": True, "type": "c", "major": 4,
                                               "minor": -1, "access": "rw"}],
    "type-a-with-numbers": [DENY_ALL, {"allow": True, "type": "a", "major": 1, "minor": 11}],
    "partial-deny-all": [{"allow": True}, {"allow": False, "access": "w"}],
    "override-back-and-forth": [DENY_ALL, KMSG_RW, {"allow": False, "type": "c", "major": 1,
                                                    "minor": 11, "access": "r"},
                                {"allow": True, "type": "c", "major": 1, "access": "r"}],
    "big-numbers": [DENY_ALL, {"allow": True, "type": "c", "major": 0xFFFFFFFF,
                               "minor": 0x80000000, "access": "rwm"}],
}  # fmt: skip
DEVICES = [(t, ma, mi) for t in "cb" for ma, mi in
           ((1, 11), (1, 3), (1, 12), (8, 0), (8, 1), (4, 7), (136, 4), (5, 2), (2, 11),
            (0xFFFFFFFF, 0x80000000), (0x7FFFFFFF, 0x80000000))]  # fmt: skip
ACCESSES = ["".join(c) for n in (1, 2, 3) for c in itertools.combinations("rwm", n)]


@pytest.mark.parametrize("name", RULE_LISTS)
def test_the_program_decides_as_the_v1_list_does(name: str) -> None:
    rules = d.with_defaults(d.parse_rules(RULE_LISTS[name]), DEFAULT_ALLOWED_DEVICES)
    code = d.program(rules)
    assert reachable(code) == set(range(len(code) // 8)), "unreachable instructions"
    for (dev_type, major, minor), access in itertools.product(DEVICES, ACCESSES):
        want = d.decide(rules, dev_type, major, minor, access)
        got = run(code, dev_type, major, minor, access)
        assert got == int(want), (name, dev_type, major, minor, access)


def test_decide_follows_the_v1_list() -> None:
    rules = d.parse_rules([DENY_ALL, KMSG_RW])
    assert d.decide(rules, "c", 1, 11, "rw")
    assert not d.decide(rules, "c", 1, 11, "m")
    assert not d.decide(rules, "b", 1, 11, "r")
    rules = d.parse_rules([KMSG_RW, DENY_ALL])
    assert not d.decide(rules, "c", 1, 11, "r")
    # Each bit on its own: allow-all, then deny c 1:11 w, refuses rw but not r.
    rules = d.parse_rules(RULE_LISTS["allow-all-then-deny-write"])
    assert d.decide(rules, "c", 1, 11, "r") and not d.decide(rules, "c", 1, 11, "rw")


def test_rules_behind_a_later_wildcard_are_left_out() -> None:
    short = d.program(d.parse_rules([DENY_ALL]))
    hidden = d.program(d.parse_rules([KMSG_RW, {"allow": True, "type": "b", "major": 8},
                                      DENY_ALL]))  # fmt: skip
    assert hidden == short


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"allow": True, "type": "x"}, r"devices\[0\]\.type 'x'"),
        ({"allow": True, "access": "rwx"}, r"devices\[0\]\.access 'rwx'"),
        ({"allow": True, "type": "c", "major": "1"}, r"\[0\]\.major must be an integer"),
        ({"allow": True, "type": "c", "minor": 1 << 32}, "does not fit in 32 bits"),
    ],
)
def test_bad_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        d.parse_rules([rule])


def test_device_program_appends_the_runtime_defaults() -> None:
    code = device_program({"devices": [DENY_ALL]})
    assert code is not None
    assert run(code, "c", 1, 3, "rw") == 1  # /dev/null, a default device
    assert run(code, "c", 136, 0, "rw") == 1  # a pty
    assert run(code, "c", 1, 11, "w") == 0  # /dev/kmsg
    assert run(code, "b", 8, 0, "m") == 1  # mknod of any node is a default


# --- the kernel: verifier and enforcement (root, a cgroup2 mount, bpf allowed) ------------------


def _cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return Path(line.split()[4])
    return None


@contextlib.contextmanager
def _scratch_cgroup() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("loading a cgroup device program needs root (CAP_BPF, CAP_SYS_ADMIN)")
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount on this host to attach a device program to")
    path = mount / f"bulkhead-devbpf-test-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


def _open_in(cgroup: Path, device: str) -> int:
    """Forks a child into ``cgroup`` that opens ``device`` for writing; its errno (0: opened)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            os.close(os.open(device, os.O_WRONLY | os.O_CLOEXEC))
        except OSError as exc:
            code = exc.errno or 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_kernel_loads_and_enforces_the_program() -> None:
    from reference_runtime.cgroups.manager import attach_devices
    from reference_runtime.linux.bpf import load_device_program

    code = device_program({"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 1,
                                                  "minor": 11, "access": "r"}]})  # fmt: skip
    assert code is not None
    with _scratch_cgroup() as cgroup:
        # The control: before the program, the same child opens /dev/kmsg for writing (which
        # writes nothing to it).
        assert _open_in(cgroup, "/dev/kmsg") == 0
        os.close(load_device_program(code))  # the verifier takes it
        attach_devices(str(cgroup), code)
        assert _open_in(cgroup, "/dev/kmsg") == 1  # EPERM: c 1:11 is allowed for reading only
        assert _open_in(cgroup, "/dev/null") == 0  # a default device
