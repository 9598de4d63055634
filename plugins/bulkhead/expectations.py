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

``cgroup`` (optional) says on which host cgroup layouts the entry was measured: ``"v1"`` (only
v1 hierarchies), ``"hybrid"`` (v1 controllers beside a cgroup2 mount) or ``"v2"`` (the unified
hierarchy alone), or a list of them, as the suite's host facts see the layout
(``bulkhead.host.probe_cgroups``: legacy, hybrid, unified). A deviation that shows only on a
pure v2 host (a setting v1's kernel refuses by itself but v2's takes) gets ``cgroup = "v2"``;
on a host of another layout the entry is not applied and is reported as not applicable, like a
version outside ``versions``, so the test's pass there is no strict XPASS::

    [[expect]]
    test = "test_cgroups.py::test_a_memory_limit_below_usage_is_refused_with_check_before_update"
    reason = "runc 1.1.5 ignores checkBeforeUpdate; only v1's kernel refuses the limit itself"
    spec = "config-linux.memory.4"
    versions = "==1.1.5"
    cgroup = "v2"

``profiles`` (optional) says under which ``--spec-profile`` the entry holds: a list of profile
names (bulkhead.disputes). An entry that exists only because the runtime takes runc's side of a
disputed behaviour holds under ``strict`` alone: ``runc-compatible`` accepts that behaviour, so
there the test passes and the entry is not applied (reported as not applicable, not as a strict
XPASS)::

    [[expect]]
    test = "test_lifecycle.py::test_delete_of_a_created_container_without_force_errors"
    reason = "runc deletes a created container without --force"
    spec = "runtime.delete.3"
    versions = ">=1.1.5, <1.2"
    profiles = ["strict"]

Expectations are strict: when the runtime is fixed the test XPASSes and fails the run, so the
entry has to be removed (or its versions bounded). Entries that match no test are reported, so
none go stale unseen. An entry with ``strict = false`` (what ``--write-expectations`` writes: a
baseline to ratchet down) does not fail the run when its test passes; the test is reported as
fixed, so the entry can be removed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bulkhead.errors import UsageError
from bulkhead.options import DEFAULT_PROFILE, PROFILES

Version = tuple[int, ...]
_OPS = ("==", "!=", ">=", "<=", ">", "<")
_CLAUSE = re.compile(r"^(==|!=|>=|<=|>|<)?\s*(\d+(?:\.\d+)*)$")
_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)")
# The ``cgroup`` condition's names for the host layouts bulkhead.host.probe_cgroups reports.
CGROUP_LAYOUTS = {"legacy": "v1", "hybrid": "hybrid", "unified": "v2"}
_KEYS = ("test", "reason", "spec", "versions", "strict", "cgroup", "profiles")


def host_cgroup_layout() -> str:
    """This host's layout by the ``cgroup`` condition's names ("v1", "hybrid" or "v2")."""
    from bulkhead.host import probe_host

    return CGROUP_LAYOUTS[probe_host().cgroups.mode]


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
    strict: bool = True
    # Host cgroup layouts the entry holds on ("v1", "hybrid", "v2"); None: every layout.
    cgroup: frozenset[str] | None = None
    # The --spec-profile names the entry holds under; None: every profile.
    profiles: frozenset[str] | None = None

    def matches(self, nodeid: str) -> bool:
        return nodeid == self.test or nodeid.endswith("/" + self.test)

    def applies_to(
        self,
        version: Version | None,
        host_cgroup: str | None = None,
        profile: str = DEFAULT_PROFILE,
    ) -> bool:
        """Whether the entry holds for a runtime reporting ``version`` (None: unknown) on a host
        whose cgroup layout is ``host_cgroup`` (None: this host's, probed when it matters),
        under the --spec-profile ``profile``."""
        if self.versions is not None and (version is None or not self.versions.contains(version)):
            return False
        if self.profiles is not None and profile not in self.profiles:
            return False
        if self.cgroup is None:
            return True
        return (host_cgroup or host_cgroup_layout()) in self.cgroup

    def conditions(self) -> str:
        """Where the entry applies, in short ("" when everywhere)."""
        parts = [self.versions.text] if self.versions else []
        if self.cgroup is not None:
            parts.append("cgroup " + "/".join(sorted(self.cgroup)))
        if self.profiles is not None:
            parts.append("profile " + "/".join(p for p in PROFILES if p in self.profiles))
        return "; ".join(parts)

    def describe(self, runtime: str) -> str:
        measured = f"; measured on {self.conditions()}" if self.conditions() else ""
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
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            # A misspelt "version" must not silently make an entry apply to every release.
            raise UsageError(
                f"expectations {source}: entry {i} has unknown keys {', '.join(unknown)} "
                f"(known: {', '.join(_KEYS)})"
            )
        strict = entry.get("strict", True)
        if not isinstance(strict, bool):
            raise UsageError(f"expectations {source}: entry {i} strict: give true or false")
        versions = None
        if "versions" in entry:
            raw = entry["versions"]
            try:
                if not isinstance(raw, str) or not raw.strip():
                    raise ValueError("give a non-empty string such as '>=1.8.0, <1.9'")
                versions = VersionRange.parse(raw)
            except ValueError as exc:
                raise UsageError(f"expectations {source}: entry {i} versions: {exc}") from exc
        where = f"expectations {source}: entry {i}"
        cgroup = _cgroup_condition(entry.get("cgroup"), where)
        profiles = _profiles_condition(entry.get("profiles"), where)
        out.append(
            Expectation(
                entry["test"], entry["reason"], entry["spec"], versions, strict, cgroup, profiles
            )
        )
    return out


def _cgroup_condition(raw: object, where: str) -> frozenset[str] | None:
    if raw is None:
        return None
    names = [raw] if isinstance(raw, str) else raw
    known = sorted(set(CGROUP_LAYOUTS.values()))
    if (
        not isinstance(names, list)
        or not names
        or any(not isinstance(n, str) or n not in known for n in names)
    ):
        raise UsageError(
            f"{where} cgroup: give one of {', '.join(known)} or a list of them, not {raw!r}"
        )
    return frozenset(names)


def _profiles_condition(raw: object, where: str) -> frozenset[str] | None:
    if raw is None:
        return None
    # A list only: a bare string would read as one profile to some and as letters to others.
    if (
        not isinstance(raw, list)
        or not raw
        or any(not isinstance(n, str) or n not in PROFILES for n in raw)
    ):
        raise UsageError(
            f"{where} profiles: give a list of profile names ({', '.join(PROFILES)}), not {raw!r}"
        )
    return frozenset(raw)


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
