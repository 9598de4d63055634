"""linux.memoryPolicy → set_mempolicy(2) arguments (config-linux.md "Memory policy")."""

from __future__ import annotations

import os
from typing import Any

import pytest

from reference_runtime.errors import SpecError
from reference_runtime.spec.validate import validate


def check(raw: Any, bundle: str) -> Any:
    types: dict[str, int] = {}
    return validate(raw, bundle, ns_type_of=types.get, isdir=os.path.isdir,
                    is_executable=lambda p: os.access(p, os.X_OK))  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"mode": "MPOL_BIND", "nodes": "0"}, (2, 0b1)),
        ({"mode": "MPOL_INTERLEAVE", "nodes": "0-2,5"}, (3, 0b100111)),
        ({"mode": "MPOL_PREFERRED"}, (1, 0)),  # no nodes: local allocation
        ({"mode": "MPOL_LOCAL"}, (4, 0)),
        ({"mode": "MPOL_BIND", "nodes": "1", "flags": ["MPOL_F_STATIC_NODES"]}, (2 | 1 << 15, 2)),
    ],
)
def test_a_policy_becomes_mode_flags_and_a_nodemask(
    make_config: Any, bundle: str, policy: dict[str, Any], expected: tuple[int, int]
) -> None:
    config = make_config()
    config["linux"]["memoryPolicy"] = policy
    cfg = check(config, bundle)
    assert cfg.process.memory_policy == expected


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"mode": "MPOL_BOGUS"}, "unknown mode"),
        ({"mode": "MPOL_BIND"}, "needs nodes"),
        ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "takes no nodes"),
        ({"mode": "MPOL_BIND", "nodes": "0-x"}, "not a node list"),
        ({"mode": "MPOL_BIND", "nodes": "3-1"}, "out of range"),
        ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "unknown flag"),
        (
            {
                "mode": "MPOL_BIND",
                "nodes": "0",
                "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"],
            },
            "exclude each other",
        ),
    ],
)
def test_a_bad_policy_is_refused_before_the_kernel(
    make_config: Any, bundle: str, policy: dict[str, Any], message: str
) -> None:
    config = make_config()
    config["linux"]["memoryPolicy"] = policy
    with pytest.raises(SpecError, match=message):
        check(config, bundle)
