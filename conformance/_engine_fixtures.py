"""The engine's fixtures, a plugin that the full-stack modules name in ``pytest_plugins``: so the
session fixture is one per session and xdist worker (a fixture imported into several modules
would be one per module), and pytest rewrites the asserts here (a plugin module must not be
imported before pytest registers it: the helpers live apart, in conformance._engine).

- ``engine_session``: one engine per session; the test images are built and loaded once
  (``image build-test``) and one bridge container has run, so the engine's own network
  namespace and bridge exist before any test's "before" snapshot (they persist for the session,
  as dockerd's bridge does, and ``network prune`` removes them at its end);
- ``engine``: per test; on the way out every container the test made is removed (``rm -f``)
  and the engine's directories, its network namespace's links and the cgroup parent must be
  back as they were (the leak sentinel, which looks after this fixture's teardown, checks the
  mounts, processes and cgroups below the session's directories and token).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulkhead.suite import Suite
from conformance._engine import (
    BUSYBOX,
    Engine,
    close_engine,
    engine_for,
    remove_cgroup_parent,
)


@pytest.fixture(scope="session")
def engine_session(bulkhead_suite: Suite) -> Iterator[Engine]:
    engine = engine_for(
        bulkhead_suite, bulkhead_suite.workdir / "engine", bulkhead_suite.workdir / "engine-run"
    )
    try:
        engine("image", "build-test", timeout=120)
        # The engine's namespace and bridge come with the first bridge container and stay: made
        # now, they are part of every test's "before".
        engine("run", "--rm", BUSYBOX, "true")
        remove_cgroup_parent(engine.cgroup_parent.strip("/"))
        yield engine
    finally:
        problems = close_engine(engine)
        assert not problems, "the engine left behind at the end of the session: " + "; ".join(
            problems
        )


@pytest.fixture
def engine(engine_session: Engine) -> Iterator[Engine]:
    """The session's engine; what the test made is removed after it, and checked."""
    before = engine_session.snapshot()
    links = {link.name for link in engine_session.engine_links()}
    yield engine_session
    engine_session.remove_all()
    problems = []
    left = engine_session.container_dirs()
    if left:
        problems.append(f"containers still listed after rm -f: {left}")
    extra = sorted(engine_session.snapshot() - before)
    if extra:
        problems.append("engine files left: " + ", ".join(extra))
    now = {link.name for link in engine_session.engine_links()}
    if now - links:
        problems.append(f"links left in the engine's network namespace: {sorted(now - links)}")
    problems += [
        f"cgroup {c}" for c in remove_cgroup_parent(engine_session.cgroup_parent.strip("/"))
    ]
    assert not problems, "the test's containers left behind:\n  " + "\n  ".join(problems)
