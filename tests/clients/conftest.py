"""Fixtures for running real container clients (podman, containerd) over an OCI runtime.

Each client runs with its state under a temporary directory, and what it leaves on the host is
removed by the fixture: containers, cgroups under a parent named for the run, its daemon (by the
pid we started). runc runs the same scenarios as the control: a client that fails with runc too
is a broken setup, not a broken reference runtime.
"""

from __future__ import annotations

import pytest
from _client_support import RUNTIMES, runtime_binary


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return runtime_binary(str(request.param))
