"""The runtime-spec requirements the suite's ``spec(...)`` markers name, as shipped data.

``data/requirements.json`` is derived from the research catalogue of runtime-spec v1.3.0's
normative statements by ``scripts/gen-requirements`` and ships inside the package, so an
installed suite can name the section and the sentence a failure breaks without reading anything
beside it. A *core* requirement is a runtime's or a hook's MUST / MUST NOT that a black-box test
can check, stated once and in words: the set certification and ``bulkhead --version`` count.

Selection (``--spec-id``, ``--spec-section``) is decided here, without pytest.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

SPEC_VERSION = "1.3.0"
SPEC_URL = f"https://github.com/opencontainers/runtime-spec/blob/v{SPEC_VERSION}/"


@dataclass(frozen=True)
class Requirement:
    id: str
    file: str
    section: str
    anchor: str
    level: str
    subject: str
    summary: str
    core: bool

    @property
    def where(self) -> str:
        """``runtime.md § Lifecycle``: the file and section of the spec text."""
        return f"{self.file} § {self.section}"

    @property
    def url(self) -> str:
        return f"{SPEC_URL}{self.file}#{self.anchor}"


@functools.cache
def load() -> dict[str, Requirement]:
    """Every requirement by id, in the catalogue's order (the spec's)."""
    text = (resources.files("bulkhead") / "data" / "requirements.json").read_text()
    data = json.loads(text)
    return {r["id"]: Requirement(**r) for r in data["requirements"]}


def core() -> dict[str, Requirement]:
    return {i: r for i, r in load().items() if r.core}


def matches_id(req_id: str, prefix: str) -> bool:
    """``--spec-id`` matching: the id itself, or a prefix ending at one of its dots
    (``config-linux.seccomp`` selects ``config-linux.seccomp.3`` but not
    ``config-linux.seccomp-notify.1``; ``runtime.state.1`` does not select ``runtime.state.10``)."""
    return req_id == prefix or req_id.startswith(prefix.rstrip(".") + ".")


def matches_section(req: Requirement, wanted: str) -> bool:
    """``--spec-section`` matching, case-insensitive: a spec file (``config-linux.md``), a
    section's title (``Lifecycle``) or anchor (``lifecycle``), or both (``runtime.md#lifecycle``,
    ``runtime.md:Lifecycle``)."""
    w = wanted.strip().lower()
    for sep in ("#", ":"):
        if sep in w:
            file, _, section = w.partition(sep)
            return req.file.lower() == file and section in (req.section.lower(), req.anchor)
    return w in (req.file.lower(), req.section.lower(), req.anchor)


def select(ids: Iterable[str] = (), sections: Iterable[str] = ()) -> set[str]:
    """The requirement ids chosen by ``--spec-id`` prefixes and ``--spec-section`` names (the
    union of both). Raises ValueError naming every value that matches no requirement: a typo
    must not silently select nothing."""
    catalogue = load()
    chosen: set[str] = set()
    unknown: list[str] = []
    for prefix in ids:
        found = {i for i in catalogue if matches_id(i, prefix)}
        if not found:
            unknown.append(f"--spec-id {prefix}")
        chosen |= found
    for wanted in sections:
        found = {i for i, r in catalogue.items() if matches_section(r, wanted)}
        if not found:
            unknown.append(f"--spec-section {wanted}")
        chosen |= found
    if unknown:
        raise ValueError(
            f"no runtime-spec {SPEC_VERSION} requirement matches " + ", ".join(unknown)
        )
    return chosen


def in_order(ids: Iterable[str]) -> list[str]:
    """``ids`` in the spec's order; ids the catalogue does not know come last, sorted."""
    wanted = set(ids)
    known = [i for i in load() if i in wanted]
    return known + sorted(wanted - set(known))
