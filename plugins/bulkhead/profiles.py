"""Hypothesis profiles for container tests: no deadline (a container takes tens of ms to start),
few examples by default (each example may create and destroy a container).

``dev`` is the default, ``ci`` is loaded when the CI variable is set (it replaces hypothesis's
built-in profile of that name: derandomised, so a gate run is reproducible), ``thorough`` is for
nightly runs. Choose with ``--hypothesis-profile``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

_common: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
PROFILES = {
    "dev": settings(max_examples=8, **_common),
    "ci": settings(max_examples=8, derandomize=True, database=None, print_blob=True, **_common),
    "thorough": settings(max_examples=100, **_common),
}


def register() -> None:
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)


def default_profile() -> str:
    return "ci" if os.environ.get("CI") else "dev"
