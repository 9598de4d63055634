"""System V IPC keys the suite uses, derived from the session token.

System V objects are named by a number, not a string, so the token (``bh-<6 hex>-``) cannot be
written into them. Instead every key the suite uses is ``token bits << SLOT_BITS | slot``: the
leak sentinel recognises ours in /proc/sysvipc/* by the upper bits, and a neighbouring session or
xdist worker (another token) never collides with us. Keys stay positive 31-bit numbers, so they
read the same in /proc/sysvipc (printed as signed ``int``) as when they were made.

POSIX message queues have names and simply carry the token (the container id) in them.
"""

from __future__ import annotations

import re
import zlib

SLOT_BITS = 7
_SLOTS = (1 << SLOT_BITS) - 1  # slots 1..127; slot 0 is never used, so no key is IPC_PRIVATE
_TOKEN = re.compile(r"bh-([0-9a-f]{6})-")


def token_of(name: str) -> str:
    """The session token a container id (or any of our names) starts with."""
    match = _TOKEN.match(name)
    if match is None:
        raise ValueError(f"{name!r} does not start with a session token (bh-<6 hex>-)")
    return match.group(0)


def _prefix(token: str) -> int:
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise ValueError(f"{token!r} is not a session token (bh-<6 hex>-)")
    return int(match.group(1), 16)


def key_for(container_id: str) -> int:
    """The key of the System V objects a test makes for container ``container_id``.

    Ids end in a per-session counter, so consecutive containers get different slots; the kinds
    (shm, msg, sem) have separate key spaces, so one key serves each kind once.
    """
    token = token_of(container_id)
    suffix = container_id[len(token) :]
    number = int(suffix) if suffix.isdigit() else zlib.crc32(suffix.encode())
    return (_prefix(token) << SLOT_BITS) | (number % _SLOTS + 1)


def is_ours(token: str, key: int) -> bool:
    """Whether ``key`` is one that ``key_for`` gives for this session's containers."""
    return key > 0 and key >> SLOT_BITS == _prefix(token) and key & _SLOTS != 0
