"""Per-runtime expectations: known, reasoned deviations turned into strict xfails.

A file is TOML with one ``[[expect]]`` table per deviation::

    [[expect]]
    test = "test_lifecycle.py::test_delete_created_container_errors"
    reason = "runc deletes a created container without --force"
    spec = "runtime.delete.3"
    versions = ">=1.1.5, <1.2"

``test`` matches the end of a test's node id (so a parametrised id may be named exactly).
``versions`` (optional) says which releases of the runtime the entry was measured on: a list of
comparisons (``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``; a bare version means ``==``) that must
all hold for the version the runtime reports in ``--version``. An entry whose versions do not
include the runtime's is not applied (a newer release that fixed the deviation must not turn
into a strict XPASS) and is reported as not applicable, not as stale; when the runtime's version
cannot be read, an entry with ``versions`` is not applied either.

Expectations are strict: when the runtime is fixed the test XPASSes and fails the run, so the
entry has to be removed (or its versions bounded). Entries that match no test are reported, so
none go stale unseen.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bulkhead.errors import UsageError

Version = tuple[int, ...]
_OPS = ("==", "!=", ">=", "<=", ">", "<")
_CLAUSE = re.compile(r"^(==|!=|>=|<=|>|<)?\s*(\d+(?:\.\d+)*)$")
_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)")


def parse_version(text: str) -> Version | None:
    """The first dotted version number in ``text`` (``runc version 1.1.5`` -> (1, 1, 5)), or
    None. Pre-release and build suffixes are ignored: ``1.8.1-rc2`` compares as 1.8.1."""
    found = _VERSION.search(text)
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def _compare(left: Version, right: Version) -> int:
    width = max(len(left), len(right))
    a = left + (0,) * (width - len(left))
    b = right + (0,) * (width - len(right))
    return (a > b) - (a < b)


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of comparisons, ``>=1.8.0, <1.9``."""

    clauses: tuple[tuple[str, Version], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        clauses = []
        for raw in text.split(","):
            match = _CLAUSE.match(raw.strip())
            if match is None:
                raise ValueError(
                    f"{raw.strip()!r} is not a comparison such as '>=1.8.0' "
                    f"(operators: {' '.join(_OPS)}; a bare version means ==)"
                )
            op = match.group(1) or "=="
            clauses.append((op, tuple(int(p) for p in match.group(2).split("."))))
        return cls(tuple(clauses), text.strip())

    def contains(self, version: Version) -> bool:
        for op, bound in self.clauses:
            c = _compare(version, bound)
            ok = {
                "==": c == 0,
                "!=": c != 0,
                ">=": c >= 0,
                "<=": c <= 0,
                ">": c > 0,
                "<": c < 0,
            }[op]
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Expectation:
    test: str
    reason: str
    spec: str
    versions: VersionRange | None = None

    def matches(self, nodeid: str) -> bool:
        return nodeid == self.test or nodeid.endswith("/" + self.test)

    def applies_to(self, version: Version | None) -> bool:
        """Whether the entry holds for a runtime reporting ``version`` (None: unknown)."""
        if self.versions is None:
            return True
        return version is not None and self.versions.contains(version)

    def describe(self, runtime: str) -> str:
        measured = f"; measured on {self.versions.text}" if self.versions else ""
        return f"{runtime}: {self.reason} (spec {self.spec}{measured})"


def parse(text: str, source: str) -> list[Expectation]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"failed to read expectations {source}: {exc}") from exc
    entries = data.get("expect", [])
    if not isinstance(entries, list):
        raise UsageError(f"expectations {source}: write each entry as [[expect]] (an array)")
    out = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UsageError(f"expectations {source}: entry {i} is not a table")
        bad = [
            k
            for k in ("test", "reason", "spec")
            if not isinstance(entry.get(k), str) or not entry[k]
        ]
        if bad:
            raise UsageError(
                f"expectations {source}: entry {i} needs a non-empty string for {', '.join(bad)}"
            )
        unknown = sorted(set(entry) - {"test", "reason", "spec", "versions"})
        if unknown:
            # A misspelt "version" must not silently make an entry apply to every release.
            raise UsageError(
                f"expectations {source}: entry {i} has unknown keys {', '.join(unknown)} "
                "(known: test, reason, spec, versions)"
            )
        versions = None
        if "versions" in entry:
            raw = entry["versions"]
            try:
                if not isinstance(raw, str) or not raw.strip():
                    raise ValueError("give a non-empty string such as '>=1.8.0, <1.9'")
                versions = VersionRange.parse(raw)
            except ValueError as exc:
                raise UsageError(f"expectations {source}: entry {i} versions: {exc}") from exc
        out.append(Expectation(entry["test"], entry["reason"], entry["spec"], versions))
    return out


def load(path: Path | None, runtime_name: str) -> tuple[list[Expectation], str]:
    """The given file, or the suite's bundled file for a runtime of that name (if any)."""
    if path is not None:
        if not path.is_file():
            raise UsageError(f"--expectations {path}: no such file")
        return parse(path.read_text(), str(path)), str(path)
    bundled = resources.files("conformance") / "expectations" / f"{runtime_name}.toml"
    if bundled.is_file():
        return parse(bundled.read_text(), f"bundled {runtime_name}.toml"), str(bundled)
    return [], "none"
