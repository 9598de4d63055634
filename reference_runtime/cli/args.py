"""A small, strict option parser: ``--name value``, ``--name=value``, flags, repeats, ``--``."""

from __future__ import annotations

from reference_runtime.errors import UsageError

FLAG = "flag"
VALUE = "value"
MULTI = "multi"


class Parsed:
    __slots__ = ("options", "positionals")

    def __init__(self) -> None:
        self.options: dict[str, object] = {}
        self.positionals: list[str] = []

    def flag(self, name: str) -> bool:
        return bool(self.options.get(name))

    def value(self, name: str) -> str | None:
        v = self.options.get(name)
        return v if isinstance(v, str) else None

    def values(self, name: str) -> list[str]:
        v = self.options.get(name)
        return list(v) if isinstance(v, list) else []


def parse(
    args: list[str],
    spec: dict[str, str],
    *,
    aliases: dict[str, str] | None = None,
    stop_at_positional: bool = False,
) -> Parsed:
    """``spec`` maps long option names (without dashes) to FLAG, VALUE or MULTI.

    Single-dash long options (``-bundle``) are accepted as Go's flag package (runc) does.
    """
    out = Parsed()
    aliases = aliases or {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out.positionals.extend(args[i:])
            break
        if arg.startswith("-") and arg != "-":
            name, eq, inline = arg.lstrip("-").partition("=")
            name = aliases.get(name, name)
            kind = spec.get(name)
            if kind is None:
                raise UsageError(f"unknown option {arg}")
            if kind == FLAG:
                if eq:
                    out.options[name] = inline.lower() in ("1", "true", "yes")
                else:
                    out.options[name] = True
                continue
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise UsageError(f"option {arg} needs a value")
            if kind == MULTI:
                previous = out.options.get(name)
                out.options[name] = [*(previous if isinstance(previous, list) else []), value]
            else:
                out.options[name] = value
            continue
        out.positionals.append(arg)
        if stop_at_positional:
            out.positionals.extend(args[i:])
            break
    return out
