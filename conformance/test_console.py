"""The terminal of the container process (config.md "Process": terminal, consoleSize;
config-linux.md "Default Devices": /dev/console).

The runtime is given ``--console-socket`` (runc's command line) and sends the pty master there;
the test receives it (conformance/_console.py) and talks to the process through it. What the
process reports about its stdio (``[ -t 0 ]``, ``tty``, ``stty size``, the device numbers of
/dev/console and of its stdin) is checked against the master the test holds: the pty number
from TIOCGPTN names the same /dev/pts/N, and a line the test types comes back processed.
"""

from __future__ import annotations

import os

import pytest

from bulkhead.containers import ContainerFactory
from bulkhead.spec import ConsoleSize, Spec
from conformance._console import (
    PTY_SLAVE_MAJORS,
    console_socket,
    fields,
    is_pty_master,
    pty_number,
    read_until,
)
from conformance._support import (
    assert_nothing_created,
    expect_refusal,
    expect_success,
    sh,
)

ROWS, COLS = 37, 123  # not a size any terminal has by default (a pty starts at 0 0)

# What the process says about its terminal, then a line it reads from it.
REPORT = (
    "if [ -t 0 ] && [ -t 1 ] && [ -t 2 ]; then echo tty=yes; else echo tty=no; fi; "
    'echo "name=$(tty)"; '
    "echo \"console=$(stat -L -c '%t:%T' /dev/console)\"; "
    "echo \"stdin=$(stat -L -c '%t:%T' /proc/self/fd/0)\"; "
    'echo "size=$(stty size 2>&1 | tr " " x)"; '
    'read line; echo "got=$line"'
)


def terminal_spec(containers: ContainerFactory, script: str = REPORT, *, size: bool = True) -> Spec:
    spec = containers.spec(sh(script))
    assert spec.process is not None
    spec.process.terminal = True
    spec.process.console_size = ConsoleSize(height=ROWS, width=COLS) if size else None
    return spec


def _device(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(":")  # stat's %t:%T, in hex
    return int(major, 16), int(minor, 16)


def run_on_terminal(containers: ContainerFactory, spec: Spec, typed: str) -> tuple[str, int]:
    """Creates and starts ``spec`` with a console socket, types ``typed`` and a newline, and
    returns what the terminal showed up to the ``got=`` line and the master's pty number."""
    with (
        containers.container(spec, create=False) as ctr,
        console_socket(containers.base_dir, ctr.id) as sock,
    ):
        ctr.create(console_socket=sock.path)
        master = sock.master()
        assert is_pty_master(master), "the descriptor sent is not a pty master"
        ctr.start()
        os.write(master, typed.encode() + b"\n")
        return read_until(master, "got="), pty_number(master)


@pytest.mark.spec("config.process.apply-terminal", "config-linux.default-devices.1")
def test_the_process_runs_on_the_pty_whose_master_was_sent(
    containers: ContainerFactory,
) -> None:
    text, number = run_on_terminal(containers, terminal_spec(containers), "hello from the host")
    seen = fields(text)
    assert seen.get("tty") == "yes", f"stdin, stdout and stderr are not all terminals:\n{text}"
    assert seen.get("name") == f"/dev/pts/{number}", text
    # The line typed at the master reached the process's stdin (and its answer came back).
    assert "got=hello from the host" in text, text
    console, stdin = _device(seen["console"]), _device(seen["stdin"])
    # config-linux.md: /dev/console is the pty, bind-mounted there.
    assert stdin[0] in PTY_SLAVE_MAJORS and stdin[1] == number, f"stdin is {stdin}"
    assert console == stdin, f"/dev/console is {console}, the terminal {stdin}"


@pytest.mark.spec("config.process.apply-console-size", "config.process.3", "config.process.4")
def test_console_size_sizes_the_pty(containers: ContainerFactory) -> None:
    text, _ = run_on_terminal(containers, terminal_spec(containers), "x")
    assert fields(text).get("size") == f"{ROWS}x{COLS}", text
    # The control: without consoleSize the same pty has the kernel's default size.
    text, _ = run_on_terminal(containers, terminal_spec(containers, size=False), "x")
    assert fields(text).get("size") != f"{ROWS}x{COLS}", text


@pytest.mark.spec("config.process.apply-terminal", "runtime.create.8")
def test_a_console_socket_that_is_not_a_socket_is_refused(containers: ContainerFactory) -> None:
    spec = terminal_spec(containers, "true")
    with containers.container(spec, create=False) as ctr:
        not_a_socket = containers.base_dir / f"{ctr.id}.not-a-socket"
        not_a_socket.write_text("")
        try:
            call = ctr.create(check=False, console_socket=not_a_socket)
            expect_refusal(call, "create with a regular file as the console socket")
            assert_nothing_created(containers, ctr.id, bundle=ctr.bundle, what="refused create")
        finally:
            not_a_socket.unlink()
    # The control: the same config with a listening socket is created.
    with (
        containers.container(spec, create=False) as ctr,
        console_socket(containers.base_dir, ctr.id) as sock,
    ):
        expect_success(ctr.create(check=False, console_socket=sock.path), "create")
        sock.master()
