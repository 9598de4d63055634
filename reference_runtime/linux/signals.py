"""Signal names and numbers (signal(7), x86_64/arm64 Linux), without ``import signal``.

The ``signal`` module imports ``enum`` (several ms at start-up, design.md §5); kill only needs
the numbers.
"""

from __future__ import annotations

SIGNALS: dict[str, int] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip
SIGRTMIN = 34
SIGRTMAX = 64
SIGKILL = 9


def parse_signal(text: str) -> int:
    """``TERM``, ``SIGTERM``, ``15``, ``RTMIN+1``; raises ValueError for anything else."""
    raw = text.strip().upper()
    if raw.isdigit():
        number = int(raw)
        if 1 <= number <= SIGRTMAX:
            return number
        raise ValueError(f"signal {text} is out of range 1..{SIGRTMAX}")
    name = raw.removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value, sign in (("RTMIN", SIGRTMIN, 1), ("RTMAX", SIGRTMAX, -1)):
        if name == base:
            return value
        if name.startswith(base + ("+" if sign > 0 else "-")):
            offset = name[len(base) + 1 :]
            if offset.isdigit() and SIGRTMIN <= value + sign * int(offset) <= SIGRTMAX:
                return value + sign * int(offset)
    raise ValueError(f"unknown signal {text!r}")


def reset_for_exec() -> None:
    """Undoes what the interpreter did to signal dispositions, before execve.

    CPython ignores SIGPIPE and SIGXFSZ at start-up; an ignored disposition survives execve
    (signal(7)), so without this every container program would start with SIGPIPE ignored.
    ``_signal`` is the C module under ``signal``, without its ``enum`` import.
    """
    import _signal

    for number in (SIGNALS["PIPE"], SIGNALS["XFSZ"], SIGNALS["INT"]):
        _signal.signal(number, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


# What a foreground `run` passes on to the container, as runc's signal proxy does.
FORWARDED = ("HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "CONT", "ALRM")


def forward_to(pid: int) -> None:
    """Relays the signals a terminal or supervisor sends the runtime to the container's init."""
    import _signal
    import os

    def relay(number: int, frame: object) -> None:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            os.kill(pid, number)
        except ProcessLookupError:
            pass  # tolerated: the init has just exited; wait_for will see it

    for name in FORWARDED:
        _signal.signal(SIGNALS[name], relay)
