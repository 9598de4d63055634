"""JSON without the ``json`` package's start-up cost.

``import json`` costs ~7 ms here because ``json.decoder`` imports ``re`` (design.md §5), and the
runtime reads or writes JSON on every verb. The C accelerator ``_json`` that ``json`` itself
uses needs no ``re``: this module drives its scanner and encoder directly, with the same
settings as ``json.loads``/``json.dumps`` (strict strings, no NaN).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Context:
    """The attributes ``_json.make_scanner`` reads from its context (json.decoder.JSONDecoder)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str]

    def __init__(self) -> None:
        self.memo = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not valid JSON")

    parse_object = None  # unused by the C scanner but looked up
    parse_array = None
    parse_string = None


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed: any context
_WS = " \t\n\r"


class JSONError(ValueError):
    pass


def _slow_error(text: str) -> JSONError:
    """The precise message for bad input, from the ``json`` package (error paths only).

    The C scanner reports errors through ``json.decoder.JSONDecodeError``, which it finds only
    if ``json.decoder`` is already imported; otherwise it fails without a message.
    """
    import json

    try:
        json.loads(text)
    except ValueError as exc:
        return JSONError(str(exc))
    return JSONError("not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parses one JSON document; raises JSONError saying where the problem is."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8: {exc}") from None
    pos = 0
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    try:
        value, end = _scan(text, pos)
    except (StopIteration, ValueError, SystemError, RecursionError):
        raise _slow_error(text) from None
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise _slow_error(text)
    return value


def _no_default(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Arguments as json.encoder.JSONEncoder.iterencode passes them: markers (None: no cycle check,
# we only encode trees we built), default, string encoder, indent, separators, sort_keys,
# skipkeys, allow_nan.
_encode_compact = _json.make_encoder(
    None, _no_default, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Compact JSON (or indented, through the slower ``json`` package when asked)."""
    if indent is not None:
        import json  # only `spec` and humans want indentation; not a hot path

        return json.dumps(value, indent=indent)
    return "".join(_encode_compact(value, 0))
