"""Per-runtime expectations: known, reasoned deviations turned into strict xfails.

A file is TOML with one ``[[expect]]`` table per deviation::

    [[expect]]
    test = "test_lifecycle.py::test_delete_created_container_errors"
    reason = "runc deletes a created container without --force"
    spec = "runtime.delete.3"

``test`` matches the end of a test's node id (so a parametrised id may be named exactly).
Expectations are strict: when the runtime is fixed the test XPASSes and fails the run, so the
entry has to be removed. Entries that match no test are reported, so none go stale unseen.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bulkhead.errors import UsageError


@dataclass(frozen=True)
class Expectation:
    test: str
    reason: str
    spec: str

    def matches(self, nodeid: str) -> bool:
        return nodeid == self.test or nodeid.endswith("/" + self.test)

    def describe(self, runtime: str) -> str:
        return f"{runtime}: {self.reason} (spec {self.spec})"


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
        out.append(Expectation(entry["test"], entry["reason"], entry["spec"]))
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
