"""linux.resources.devices → a cgroup v2 device program (BPF_PROG_TYPE_CGROUP_DEVICE). Pure.

cgroup v2 has no devices.allow/devices.deny files: device access is decided by eBPF programs
attached to the cgroup (cgroup-v2.rst, "Device controller"). The kernel runs the program on
each open and mknod of a device node with a ``struct bpf_cgroup_dev_ctx`` (<linux/bpf.h>)::

    u32 access_type;  /* (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_* */
    u32 major;
    u32 minor;

and allows the access when it returns 1, denies it (EPERM) when it returns 0.

Semantics are those of the v1 list the spec describes (config-linux.md, "Allowed Device
list"): the rules apply in the order listed, so a later rule overrides earlier ones for what it
matches; what no rule allows is denied. The runtime's default devices (DEFAULT_ALLOWED_DEVICES)
come after the configured rules, as on v1. Each access bit (read, write, mknod) is judged on its
own, as v1's exception lists do: a request is allowed only if every bit it asks for is, so
``allow c 1:11 r`` does not let a device be opened for writing, and ``deny c 1:11 w`` after an
allow-all still refuses ``O_RDWR``.

The program, for each access bit the request carries, walks the rules holding that bit from the
last to the first; the first whose type, major and minor match decides (a deny returns 0 at
once, an allow moves on to the next bit); none matching denies. After the three bits, return 1.
Rules hidden behind a later wildcard rule for that bit can never decide, and are left out.

Instructions are encoded by hand (Documentation/bpf/instruction-set.rst): 8 bytes each, ``u8
opcode; u8 dst_reg:4, src_reg:4; s16 offset; s32 imm``, little-endian (x86_64, aarch64).
"""

from __future__ import annotations

import struct

from reference_runtime.errors import SpecError

# <linux/bpf.h>: enum bpf_devcg_dev_type / bpf_devcg_acc_type.
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACCESS_BITS = {"r": ACC_READ, "w": ACC_WRITE, "m": ACC_MKNOD}
TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# Opcodes (instruction-set.rst): class | op/mode | source/size.
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
MOV64_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm
RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm
JA = 0x05  # BPF_JMP | BPF_JA: pc += off
# BPF_JMP32 compares the low 32 bits (kernel 5.1+): the context's fields are u32, and a 64-bit
# compare would sign-extend an imm of 2**31 or more and never match it.
JEQ32_K = 0x16  # BPF_JMP32 | BPF_JEQ | BPF_K: if (u32)dst == (u32)imm: pc += off
JNE32_K = 0x56  # BPF_JMP32 | BPF_JNE | BPF_K: if (u32)dst != (u32)imm: pc += off
EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0

# Registers: r1 holds the context on entry; r0 is the return value.
R0, R1, R2, R3, R4, R5, R6 = range(7)
INSN = struct.Struct("<BBhi")


class Rule:
    """One device rule, normalised: ``major``/``minor`` None match any number."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self, allow: bool, type: str, major: int | None, minor: int | None, access: str
    ) -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access

    def __repr__(self) -> str:
        ma = "*" if self.major is None else self.major
        mi = "*" if self.minor is None else self.minor
        return f"Rule({'allow' if self.allow else 'deny'} {self.type} {ma}:{mi} {self.access})"

    def matches(self, dev_type: str, major: int, minor: int) -> bool:
        return (
            self.type in ("a", dev_type)
            and self.major in (None, major)
            and self.minor in (None, minor)
        )

    @property
    def wildcard(self) -> bool:
        """Whether the rule matches every device (so earlier rules are hidden behind it)."""
        return self.type == "a" and self.major is None and self.minor is None


def _number(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"linux.resources.devices: {what} must be an integer")
    if value < 0:
        return None  # -1 (or absent) is the spec's "all"
    if value > 0xFFFFFFFF:
        raise SpecError(f"linux.resources.devices: {what} {value} does not fit in 32 bits")
    return value


def parse_rules(raw: list[dict[str, object]]) -> list[Rule]:
    """The config's rules, validated (config-linux.md: type a/c/b, access a subset of rwm)."""
    rules = []
    for i, entry in enumerate(raw):
        kind = entry.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise SpecError(f"linux.resources.devices[{i}].type {kind!r}: use a, b or c")
        access = entry.get("access") or "rwm"
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise SpecError(f"linux.resources.devices[{i}].access {access!r}: use r, w, m")
        rules.append(
            Rule(
                bool(entry.get("allow")),
                str(kind),
                _number(entry.get("major"), f"[{i}].major"),
                _number(entry.get("minor"), f"[{i}].minor"),
                "".join(sorted(set(access), key="rwm".index)),
            )
        )
    return rules


def with_defaults(
    rules: list[Rule], defaults: tuple[tuple[str, int | None, int | None, str], ...]
) -> list[Rule]:
    """``rules`` then the runtime's default devices (allowed after the config, as on v1)."""
    return rules + [Rule(True, t, ma, mi, acc) for t, ma, mi, acc in defaults]


def decide(rules: list[Rule], dev_type: str, major: int, minor: int, access: str) -> bool:
    """The v1 meaning of ``rules`` for one request (what the program must compute)."""
    for bit in access:
        verdict = False
        for rule in reversed(rules):
            if bit in rule.access and rule.matches(dev_type, major, minor):
                verdict = rule.allow
                break
        if not verdict:
            return False
    return True


class _Assembler:
    """Instructions with symbolic jump targets, resolved on ``encode``."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def emit(self, op: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.code.append((op, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def encode(self) -> bytes:
        out = bytearray()
        for pc, (op, dst, src, off, imm) in enumerate(self.code):
            # A jump's offset counts from the instruction after it.
            rel = self.labels[off] - pc - 1 if isinstance(off, str) else off
            if not -(1 << 15) <= rel < 1 << 15:
                raise SpecError("linux.resources.devices: too many rules for one device program")
            out += INSN.pack(op, (src << 4) | dst, rel, imm)
        return bytes(out)


def _live(rules: list[Rule], bit: str) -> list[Rule]:
    """The rules that can decide ``bit``, last first: none before the last wildcard."""
    out = []
    for rule in reversed(rules):
        if bit in rule.access:
            out.append(rule)
            if rule.wildcard:
                break
    return out


def program(rules: list[Rule]) -> bytes:
    """The device program for ``rules`` (in config order, defaults included)."""
    asm = _Assembler()
    asm.emit(LDX_MEM_W, R2, R1, 0)  # access_type
    asm.emit(MOV64_X, R3, R2)
    asm.emit(AND32_K, R3, imm=0xFFFF)  # r3 = device type
    asm.emit(RSH32_K, R2, imm=16)  # r2 = access requested
    asm.emit(LDX_MEM_W, R4, R1, 4)  # major
    asm.emit(LDX_MEM_W, R5, R1, 8)  # minor
    for bit in "rwm":
        done = f"{bit}.done"
        asm.emit(MOV64_X, R6, R2)
        asm.emit(AND32_K, R6, imm=ACCESS_BITS[bit])
        asm.emit(JEQ32_K, R6, off=done, imm=0)  # this bit is not asked for
        live = _live(rules, bit)
        for n, rule in enumerate(live):
            miss = f"{bit}.{n}.miss"
            if rule.type != "a":
                asm.emit(JNE32_K, R3, off=miss, imm=TYPES[rule.type])
            if rule.major is not None:
                asm.emit(JNE32_K, R4, off=miss, imm=_s32(rule.major))
            if rule.minor is not None:
                asm.emit(JNE32_K, R5, off=miss, imm=_s32(rule.minor))
            if rule.allow:
                asm.emit(JA, off=done)
            else:
                asm.emit(MOV64_K, R0, imm=0)
                asm.emit(EXIT)
            asm.label(miss)
        if not (live and live[-1].wildcard):
            # No rule decided: denied. (After a wildcard this would be unreachable, which the
            # verifier refuses: kernel/bpf/verifier.c, check_cfg.)
            asm.emit(MOV64_K, R0, imm=0)
            asm.emit(EXIT)
        asm.label(done)
    asm.emit(MOV64_K, R0, imm=1)
    asm.emit(EXIT)
    return asm.encode()


def _s32(value: int) -> int:
    """A u32 as the signed imm field holds it (JMP32 compares the low 32 bits only)."""
    return value - (1 << 32) if value >= 1 << 31 else value
