"""RuntimeClient against a recording fake runtime (a shell script; no runc, no crun, no root).

The fake logs every invocation as one line (``$0 $*``) and answers by verb: ``state`` prints a
runc-like state, ``fail`` exits 1 with a message on stderr, ``hang`` outlives any timeout, ``say``
writes one line to stderr, every other verb prints ``ok <verb>``.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from bulkhead.errors import UsageError
from bulkhead.runtime import (
    Call,
    CallLog,
    RuntimeCallError,
    RuntimeClient,
    RuntimeTimeout,
    hidden_cgroup2_controllers_prefix,
    resolve_runtime,
)

FAKE_RUNTIME = r"""#!/bin/sh
echo "$0 $*" >> '{log}'
verb=""
for arg; do
    case "$arg" in
        state|create|start|kill|delete|run|exec|features|fail|hang|say) verb=$arg; break ;;
    esac
done
last=""
for arg; do last=$arg; done
case "$verb" in
    state)
        case "$last" in
            garbled) echo "this is not json" ;;
            missing) echo "container \"missing\" does not exist" >&2; exit 1 ;;
            *) printf '{{"ociVersion":"1.0.2","id":"%s","status":"running","pid":4242,' "$last"
               printf '"bundle":"/bundles/%s","rootfs":"/bundles/%s/rootfs",' "$last" "$last"
               printf '"created":"2024-01-01T00:00:00Z"}}\n' ;;
        esac ;;
    fail) echo "half done"; echo "fake: failed to $last: permission denied" >&2; exit 1 ;;
    hang) echo $$ > '{pid_file}'; exec sleep 30 ;;
    say) echo "said $last" >&2 ;;
    *) echo "ok $verb" ;;
esac
"""


def make_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


class FakeRuntime:
    def __init__(self, directory: Path) -> None:
        self.log = directory / "calls.log"
        self.pid_file = directory / "hang.pid"
        self.binary = make_executable(
            directory / "fake-runtime",
            FAKE_RUNTIME.format(log=self.log, pid_file=self.pid_file),
        )
        self.root = directory / "root"

    def client(self, **kwargs: object) -> RuntimeClient:
        return RuntimeClient(self.binary, root=self.root, **kwargs)  # type: ignore[arg-type]

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def last_args(self) -> str:
        """The last invocation without the binary and its ``--root ROOT``."""
        line = self.lines()[-1]
        prefix = f"{self.binary} --root {self.root} "
        assert line.startswith(prefix), line
        return line[len(prefix) :]


@pytest.fixture
def fake(tmp_path: Path) -> FakeRuntime:
    return FakeRuntime(tmp_path)


# --- the command line -----------------------------------------------------------------------


def test_argv_is_prefix_binary_root_global_args_then_the_verb(fake: FakeRuntime) -> None:
    client = fake.client(global_args=("--debug", "--log-format", "json"), prefix=("env", "A=1"))
    assert client.argv("start", "c1") == (
        "env", "A=1", str(fake.binary), "--root", str(fake.root),
        "--debug", "--log-format", "json", "start", "c1",
    )  # fmt: skip


def test_the_runtime_receives_exactly_the_argv_after_the_prefix(fake: FakeRuntime) -> None:
    client = fake.client(global_args=("--debug",), prefix=("env", "A=1"))
    call = client.start("c1")
    assert call.argv[:2] == ("env", "A=1")
    assert fake.lines() == [f"{fake.binary} --root {fake.root} --debug start c1"]


@pytest.mark.parametrize(
    ("invoke", "expected"),
    [
        (lambda c: c.kill("c1"), "kill c1 TERM"),
        (lambda c: c.kill("c1", "KILL"), "kill c1 KILL"),
        (lambda c: c.kill("c1", "9"), "kill c1 9"),
        (lambda c: c.delete("c1"), "delete c1"),
        (lambda c: c.delete("c1", force=True), "delete --force c1"),
        (lambda c: c.start("c1"), "start c1"),
        (lambda c: c.create("c1", Path("/b")), "create --bundle /b c1"),
        (
            lambda c: c.create("c1", Path("/b"), pid_file=Path("/b/pid")),
            "create --bundle /b --pid-file /b/pid c1",
        ),
        (lambda c: c.run("c1", Path("/b")), "run --bundle /b c1"),
        (
            lambda c: c.exec("c1", ["sh", "-c", "true"], env=["A=1", "B=2"], cwd="/tmp"),
            "exec --env A=1 --env B=2 --cwd /tmp c1 sh -c true",
        ),
        (lambda c: c.raw_state("c1"), "state c1"),
    ],
    ids=[
        "kill-default-TERM",
        "kill-named",
        "kill-number",
        "delete",
        "delete-force",
        "start",
        "create",
        "create-pid-file",
        "run",
        "exec",
        "raw-state",
    ],
)
def test_verbs_follow_runcs_command_line(
    fake: FakeRuntime, invoke: Callable[[RuntimeClient], Call], expected: str
) -> None:
    invoke(fake.client())
    assert fake.last_args() == expected


# --- the call log ---------------------------------------------------------------------------


def test_every_call_is_recorded_with_exit_code_and_output(fake: FakeRuntime) -> None:
    log = CallLog()
    client = fake.client(log=log)
    client.start("c1")
    mark = log.mark()
    client.call("fail", "pause", check=False)

    assert [c.argv[-2:] for c in log.calls] == [("start", "c1"), ("fail", "pause")]
    started, failed = log.calls
    assert (started.returncode, started.stdout, started.stderr) == (0, "ok start\n", "")
    assert failed.returncode == 1
    assert failed.stdout == "half done\n"
    assert failed.stderr == "fake: failed to pause: permission denied\n"
    assert failed.duration > 0
    assert log.since(mark) == [failed]


def test_check_raises_an_error_naming_the_command_and_the_runtimes_stderr(
    fake: FakeRuntime,
) -> None:
    client = fake.client()
    with pytest.raises(RuntimeCallError) as info:
        client.call("fail", "pause")
    message = str(info.value)
    assert " ".join(client.argv("fail", "pause")) in message
    assert "exit 1" in message
    assert "permission denied" in message
    assert info.value.call is client.log.calls[-1]


def test_check_false_returns_the_refusal_instead_of_raising(fake: FakeRuntime) -> None:
    call = fake.client().call("fail", "pause", check=False)
    assert call.returncode == 1


def test_a_call_past_its_timeout_raises_and_its_process_is_killed(fake: FakeRuntime) -> None:
    client = fake.client(timeout=30.0)
    with pytest.raises(RuntimeTimeout) as info:
        client.call("hang", timeout=0.2)

    pid = int(fake.pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert info.value.call.returncode == -signal.SIGKILL
    assert info.value.call.duration < 10
    assert "hang" in str(info.value) and "did not finish" in str(info.value)
    assert client.log.calls == [info.value.call]


def test_the_client_timeout_applies_when_the_call_gives_none(fake: FakeRuntime) -> None:
    with pytest.raises(RuntimeTimeout):
        fake.client(timeout=0.2).call("hang")


# --- state ------------------------------------------------------------------------------------


def test_state_parses_the_runtimes_json_into_a_state(fake: FakeRuntime) -> None:
    state = fake.client().state("c1")
    assert (state.id, state.status, state.pid, state.bundle) == (
        "c1",
        "running",
        4242,
        "/bundles/c1",
    )
    assert state.oci_version == "1.0.2"
    assert state.model_extra == {
        "rootfs": "/bundles/c1/rootfs",
        "created": "2024-01-01T00:00:00Z",
    }
    assert fake.last_args() == "state c1"


def test_state_that_is_not_json_raises_runtime_call_error(fake: FakeRuntime) -> None:
    with pytest.raises(RuntimeCallError, match="not valid state JSON") as info:
        fake.client().state("garbled")
    assert info.value.call.stdout == "this is not json\n"


def test_state_of_an_unknown_container_raises_with_the_runtimes_reason(
    fake: FakeRuntime,
) -> None:
    with pytest.raises(RuntimeCallError, match='container "missing" does not exist'):
        fake.client().state("missing")


# --- describe and stderr files ----------------------------------------------------------------


def test_describe_shows_argv_exit_code_and_output() -> None:
    call = Call(("runc", "--root", "/r", "start", "c1"), 1, "out\n", "first\nsecond\n", 0.25)
    assert call.describe() == (
        "$ runc --root /r start c1\n"
        "  exit 1 after 250 ms\n"
        "  stdout: out\n"
        "  stderr: first\n"
        "          second"
    )


def test_describe_leaves_out_empty_output() -> None:
    text = Call(("runc", "start", "c1"), 0, "", "  \n", 0.001).describe()
    assert "stdout" not in text and "stderr" not in text
    assert text.splitlines()[0] == "$ runc start c1"


def test_with_a_stderr_file_the_call_holds_only_what_it_wrote(
    fake: FakeRuntime, tmp_path: Path
) -> None:
    client = fake.client()
    with (tmp_path / "stderr").open("a+") as err:
        err.write("from an earlier container\n")
        first = client.call("say", "one", stderr=err)
        second = client.call("say", "two", stderr=err)
    assert first.stderr == "said one\n"
    assert second.stderr == "said two\n"
    assert (tmp_path / "stderr").read_text() == ("from an earlier container\nsaid one\nsaid two\n")


def test_a_stderr_file_with_non_ascii_earlier_output_is_sliced_correctly(
    fake: FakeRuntime, tmp_path: Path
) -> None:
    with (tmp_path / "stderr").open("a+", encoding="utf-8") as err:
        err.write("container said: héllo\n")
        call = fake.client().call("say", "one", stderr=err)
    assert call.stderr == "said one\n"


# --- resolve_runtime ----------------------------------------------------------------------------


def test_a_name_not_on_path_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="no-such-runtime: not found on PATH"):
        resolve_runtime("no-such-runtime")


def test_a_name_on_path_resolves_to_that_binary(
    monkeypatch: pytest.MonkeyPatch, fake: FakeRuntime
) -> None:
    monkeypatch.setenv("PATH", str(fake.binary.parent))
    assert resolve_runtime("fake-runtime") == fake.binary


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "runtime"
    with pytest.raises(UsageError, match=f"{missing}: no such file"):
        resolve_runtime(str(missing))


def test_a_directory_is_not_a_runtime(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        resolve_runtime(str(tmp_path))


def test_a_file_without_execute_permission_is_a_usage_error(tmp_path: Path) -> None:
    plain = tmp_path / "runtime"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)  # no x bit at all: not executable even for root
    with pytest.raises(UsageError, match=f"{plain}: not executable"):
        resolve_runtime(str(plain))


def test_an_executable_path_resolves(fake: FakeRuntime) -> None:
    assert resolve_runtime(str(fake.binary)) == fake.binary
    assert fake.binary.stat().st_mode & stat.S_IXUSR


def test_a_relative_path_resolves_to_an_absolute_one(
    monkeypatch: pytest.MonkeyPatch, fake: FakeRuntime
) -> None:
    monkeypatch.chdir(fake.binary.parent)
    assert resolve_runtime("./fake-runtime") == fake.binary


# --- hiding cgroup2 controllers -----------------------------------------------------------------


def test_hidden_controllers_prefix_bind_mounts_the_empty_file_in_a_private_namespace(
    tmp_path: Path,
) -> None:
    empty, mount = tmp_path / "empty", Path("/sys/fs/cgroup/unified")
    prefix = hidden_cgroup2_controllers_prefix(empty, mount)
    assert prefix[:2] == ("unshare", "--mount")
    assert prefix[prefix.index("--propagation") + 1] == "private"
    shell = prefix[prefix.index("sh") :]
    assert shell[:2] == ("sh", "-c")
    assert shell[3:] == (str(empty), "/sys/fs/cgroup/unified/cgroup.controllers")
    assert "mount --bind" in shell[2]


def test_hidden_controllers_script_mounts_then_execs_the_runtime_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeRuntime
) -> None:
    # Run only the ``sh -c`` part (no unshare, no real mount): a recording ``mount`` on PATH
    # shows what would be bind-mounted, the fake runtime shows the argv it finally received.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mount_log = tmp_path / "mount.log"
    make_executable(bin_dir / "mount", f"#!/bin/sh\necho \"$*\" >> '{mount_log}'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    empty, cgroup2 = tmp_path / "empty", tmp_path / "unified"
    prefix = hidden_cgroup2_controllers_prefix(empty, cgroup2)

    client = fake.client(prefix=prefix[prefix.index("sh") :], global_args=("--debug",))
    call = client.kill("c1", "KILL")

    assert mount_log.read_text() == f"--bind {empty} {cgroup2}/cgroup.controllers\n"
    assert fake.lines() == [f"{fake.binary} --root {fake.root} --debug kill c1 KILL"]
    assert call.stdout == "ok kill\n"


# --- cleanup calls, deaths by signal, argv[0] -------------------------------------------------


def test_a_cleanup_call_is_marked_in_the_log_and_its_description(fake: FakeRuntime) -> None:
    client = fake.client()
    client.delete("c1", force=True, check=False, cleanup=True)
    (call,) = client.log.calls
    assert call.cleanup
    assert call.describe().splitlines()[0].endswith("delete --force c1    (cleanup)")
    assert not client.start("c1").cleanup


def test_a_death_by_signal_is_not_described_as_an_exit() -> None:
    call = Call(("runc", "create", "c1"), -signal.SIGSEGV, "", "", 0.1)
    assert "killed by SIGSEGV after" in call.describe()
    assert "exit" not in call.describe()
    assert "killed by SIGSEGV" in str(RuntimeCallError(call))


def test_calls_are_tagged_by_the_log_s_tagger(fake: FakeRuntime) -> None:
    log = CallLog(tagger=lambda: 7)
    fake.client(log=log).start("c1")
    assert log.calls[0].example == 7


def test_a_symlinked_runtime_is_kept_as_given_not_resolved(
    fake: FakeRuntime, tmp_path: Path
) -> None:
    # crun runs as krun through a symlink: what the runtime is depends on argv[0].
    link = tmp_path / "krun"
    link.symlink_to(fake.binary)
    assert resolve_runtime(str(link)) == link
    client = RuntimeClient(resolve_runtime(str(link)), root=fake.root)
    client.start("c1")
    assert fake.lines()[-1].startswith(f"{link} --root ")


def test_a_relative_symlink_path_is_made_absolute_without_resolving(
    monkeypatch: pytest.MonkeyPatch, fake: FakeRuntime, tmp_path: Path
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "krun").symlink_to(fake.binary)
    monkeypatch.chdir(tmp_path)
    assert resolve_runtime("bin/krun") == tmp_path / "bin" / "krun"


def test_features_output_that_is_not_json_is_a_runtime_call_error(tmp_path: Path) -> None:
    binary = make_executable(tmp_path / "rt", "#!/bin/sh\necho 'features: not supported'\n")
    with pytest.raises(RuntimeCallError, match="features output is not JSON"):
        RuntimeClient(binary, root=tmp_path).features()
