"""The container process: argv, environment and working directory (config.md: Process).

Each check reads what the kernel says of the container process itself (/proc/$$/cmdline,
environ, cwd; see _process_probe.py), in one foreground run per example.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkhead import strategies
from bulkhead.containers import ContainerFactory, Result
from bulkhead.spec import DEFAULT_PATH_ENV, ConsoleSize, Spec
from bulkhead.strategies import _process_attrs as attrs
from conformance._process_probe import SNAPSHOT, Snapshot
from conformance._support import refused, sh


def snapshot(containers: ContainerFactory, spec: Spec) -> Snapshot:
    return Snapshot.parse(containers.run(spec))


@contextlib.contextmanager
def canary_in_runtime_env() -> Iterator[str]:
    """A variable with a fresh value in this process's environment, which the runtime (a child
    of this process) inherits; removed afterwards."""
    value = secrets.token_hex(8)
    os.environ[attrs.ENV_CANARY] = value
    try:
        yield value
    finally:
        del os.environ[attrs.ENV_CANARY]


# --- args ---------------------------------------------------------------------------------------


@pytest.mark.spec("config.process.apply-args")
@given(extra=st.lists(strategies.c_strings(max_size=12), max_size=4))
def test_argv_is_exactly_args(containers: ContainerFactory, extra: list[str]) -> None:
    # `sh -c SCRIPT NAME ARG...` ignores NAME and the ARGs, which only have to reach argv.
    args = ["sh", "-c", SNAPSHOT, "bh-argv0", *extra]
    assert snapshot(containers, containers.spec(args)).strings("cmdline") == args


@pytest.mark.spec("config.process.apply-args")
def test_argv_keeps_empty_spaced_and_non_ascii_arguments(containers: ContainerFactory) -> None:
    # The control for the property above: arguments that a sloppy join/split would change.
    args = ["sh", "-c", SNAPSHOT, "zero", "", "two words", "tab\there", "é-ü", "="]
    assert snapshot(containers, containers.spec(args)).strings("cmdline") == args


@pytest.mark.spec("config.process.apply-args", "config.process.apply-env")
def test_a_bare_program_name_is_found_through_the_configured_path(
    containers: ContainerFactory,
) -> None:
    # args[0] without a slash is looked up like execvp(3) does, in the PATH of process.env:
    # a program only that PATH holds runs, and the same config without it is not found.
    tool = "bh-only-here"
    script = "#!/bin/sh\necho found-$0-$1\n"
    results: dict[bool, Result] = {}
    for with_dir in (True, False):
        path = "PATH=/opt/bh-bin:/bin" if with_dir else "PATH=/bin"
        spec = containers.spec([tool, "arg1"], env=[path, "HOME=/"])
        with containers.bundle(spec) as (cid, bundle):
            # Through the mounted overlay, so the file lands in the upper layer as overlayfs wants.
            program = bundle.rootfs / "opt" / "bh-bin" / tool
            program.parent.mkdir(parents=True)
            program.write_text(script)
            program.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
            results[with_dir] = Result.of(containers.client.run(cid, bundle.path))
    found = results[True]
    assert found.exit_code == 0, found.stderr
    # sh names the script by the path the kernel ran it from (execve(2) of a #! file).
    assert found.stdout.split() == [f"found-/opt/bh-bin/{tool}-arg1"], found.stdout
    assert results[False].exit_code != 0, "a program outside the configured PATH was found"


# --- env ----------------------------------------------------------------------------------------


@pytest.mark.spec("config.process.apply-env")
@given(env=attrs.environments())
def test_the_environment_is_exactly_env(containers: ContainerFactory, env: list[str]) -> None:
    # Nothing of the runtime's own environment may cross: the canary is in it, so a runtime
    # that passes its environment on (or adds variables of its own) fails here.
    with canary_in_runtime_env():
        seen = snapshot(containers, containers.spec(sh(SNAPSHOT), env=env)).strings("environ")
    assert sorted(seen) == sorted(env)


@pytest.mark.spec("config.process.apply-env")
def test_a_configured_canary_is_seen(containers: ContainerFactory) -> None:
    # The control for the test above: the probe does see a variable named like the canary
    # when the config asks for it, with a value unlike the runtime's.
    with canary_in_runtime_env() as value:
        env = [DEFAULT_PATH_ENV, "HOME=/", f"{attrs.ENV_CANARY}=configured-{value[::-1]}"]
        seen = snapshot(containers, containers.spec(sh(SNAPSHOT), env=env)).strings("environ")
    assert sorted(seen) == sorted(env)


# Given an env without HOME, runc and crun add one from the container's /etc/passwd. config.md
# says only that env has environ's semantics, which neither allows nor forbids that, so the
# generated environments always carry HOME and no test here takes a side.


# --- terminal ----------------------------------------------------------------------------------


@pytest.mark.spec("config.process.2")
def test_console_size_without_terminal_is_ignored(containers: ContainerFactory) -> None:
    # consoleSize only sizes a terminal: without one the process runs on the runtime's stdio
    # (here /dev/null and pipes), and asking for a size must not make the runtime fail.
    spec = containers.spec(sh('for fd in 0 1 2; do [ -t "$fd" ] && echo "tty-$fd"; done; echo ran'))
    assert spec.process is not None
    spec.process.terminal = False
    spec.process.console_size = ConsoleSize(height=25, width=80)
    result = containers.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["ran"]


# --- cwd ----------------------------------------------------------------------------------------


@pytest.mark.spec("config.process.apply-cwd")
@pytest.mark.parametrize("cwd", ["/srv/bulkhead/dir-0", "/tmp", "/srv"])
def test_the_process_starts_in_cwd(containers: ContainerFactory, cwd: str) -> None:
    assert snapshot(containers, containers.spec(sh(SNAPSHOT), cwd=cwd)).cwd == cwd


@pytest.mark.spec("config.process.apply-cwd")
def test_a_missing_cwd_is_made_inside_the_container_or_refused(
    containers: ContainerFactory,
) -> None:
    # config.md does not say whether a missing cwd is created; either is fine, but the process
    # must then run there, and the directory must come into being in the container's root.
    # The control: the runtime does run this program where the cwd exists.
    assert Snapshot.parse(containers.run(containers.spec(sh(SNAPSHOT), cwd="/tmp"))).cwd == "/tmp"
    name = f"bh-cwd-{secrets.token_hex(4)}"
    cwd = f"/{name}/deeper"
    spec = containers.spec(sh(SNAPSHOT), cwd=cwd)
    with containers.bundle(spec) as (cid, bundle):
        result = Result.of(containers.client.run(cid, bundle.path))
        made_inside = (bundle.upper / name / "deeper").is_dir()
    assert not Path("/", name).exists(), "the cwd was made on the host's root"
    if result.exit_code != 0:
        assert not made_inside, "refused, yet the cwd was made"
        return
    assert Snapshot.parse(result).cwd == cwd
    assert made_inside


@pytest.mark.spec("config.process.6", "config.valid-values.1")
@pytest.mark.parametrize("cwd", ["tmp", "srv/bulkhead"])
def test_a_relative_cwd_is_refused(containers: ContainerFactory, cwd: str) -> None:
    # config.md: cwd MUST be an absolute path; an invalid value is an error, not a guess.
    control = containers.run(containers.spec(sh(SNAPSHOT), cwd="/" + cwd))
    assert Snapshot.parse(control).cwd == "/" + cwd, "the control with an absolute cwd failed"
    with containers.bundle(containers.spec(sh("touch /ran"), cwd=cwd)) as (cid, bundle):
        call = containers.client.run(cid, bundle.path)
        ran = (bundle.upper / "ran").exists()
    assert refused(call), f"a relative cwd {cwd!r} was accepted"
    assert not ran, "the process ran although the config was refused"
