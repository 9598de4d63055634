"""config.json validation: what is refused, with which one-line reason, before any syscall."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_runtime.errors import SpecError
from reference_runtime.linux.constants import CLONE_NEWIPC, CLONE_NEWNET
from reference_runtime.spec.validate import validate


def check(raw: Any, bundle: str, ns_types: dict[str, int] | None = None) -> Any:
    types = ns_types or {}
    return validate(raw, bundle, ns_type_of=types.get, isdir=os.path.isdir,
                    is_executable=lambda p: os.access(p, os.X_OK))  # fmt: skip


def test_a_runc_like_config_is_accepted_and_normalised(make_config: Any, bundle: str) -> None:
    cfg = check(make_config(), bundle)
    assert cfg.root_path == os.path.join(bundle, "rootfs")
    assert [ns.type for ns in cfg.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert cfg.process is not None and cfg.process.args == ["sh"]
    assert cfg.process.capabilities["bounding"] == ["CAP_KILL"]
    assert [m.destination for m in cfg.mounts] == ["/proc", "/dev"]
    assert cfg.hostname == "box"


def _set(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = config
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
    if value is _DELETE:
        del target[keys[-1]]
    elif isinstance(target, list):
        target[int(keys[-1])] = value
    else:
        target[keys[-1]] = value
    return config


_DELETE = object()

BAD: list[tuple[str, Any, str]] = [
    ("ociVersion", "2.0.0", "major version 1"),
    ("ociVersion", "banana", "not a version"),
    ("ociVersion", _DELETE, "ociVersion is required"),
    ("root.path", "missing", "no such directory"),
    ("root", _DELETE, "root is required"),
    ("process.args", [], "name the program"),
    ("process.args", "sh", "must be an array"),
    ("process.cwd", "relative", "absolute path"),
    ("process.capabilities.wrong", [], "not a capability set"),
    ("process.rlimits", [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}], "unknown rlimit"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2, "listed twice"),
    ("process.user.uid", -1, "out of range"),
    ("process.terminal", "yes", "must be a boolean"),
    ("mounts.0.destination", "", "must not be empty"),
    ("mounts.0.options", ["bind", "idmap"], "needs a user namespace"),
    ("mounts.0", {"type": "tmpfs"}, "destination is required"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "mount"}], "listed twice"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "bogus"}], "unknown namespace type"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "uts"}, {"type": "user"}],
     "required for a new user namespace"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 0, "size": 1}], "need a new user"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 0, "size": 0}], "out of range"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "uts"}], "mount namespace is required"),
    ("linux.namespaces", [{"type": "mount"}], "uts namespace"),  # hostname without uts
    ("linux.devices", [{"path": "/etc/null", "type": "c", "major": 1, "minor": 3}],
     "outside /dev"),
    ("linux.devices", [{"path": "/dev/x", "type": "q", "major": 1, "minor": 3}],
     "unknown device type"),
    ("linux.rootfsPropagation", "sideways", "not a propagation"),
    ("linux.maskedPaths", ["relative"], "absolute path"),
    ("linux.seccomp", {"syscalls": []}, "defaultAction must be a string"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": []}]},
     "must not be empty"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0,
                                                                  "op": "SCMP_CMP_EQ"}]}]},
     "out of range"),
    ("linux.netDevices", {"eth0": {"name": "a b"}}, "not a network device name"),
    ("hooks", {"prestart": [{"path": "bin/true"}]}, "absolute path"),
    ("hooks", {"poststart": [{"path": "/nonexistent/hook"}]}, "not an executable file"),
    ("hooks", {"prestart": [{"path": "/bin/true", "timeout": 0}]}, "out of range"),
    ("hooks", {"preStart": []}, "not a hook kind"),
    ("annotations", {"a": 1}, "must be a string"),
    ("process.scheduler", {"policy": "SCHED_NOPE"}, "unknown policy"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "nice": 40}, "out of range"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "flags": ["X"]}, "unknown flag"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_X", "priority": 1}, "unknown class"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "out of range"),
    ("linux.personality", {"domain": "LINUX64"}, "unknown domain"),
    ("linux.personality", {"domain": "LINUX", "flags": ["x"]}, "not supported"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "reason"), BAD, ids=[b[0] + ":" + b[2] for b in BAD])
def test_bad_input_is_refused_with_a_one_line_reason(
    make_config: Any, bundle: str, path: str, value: Any, reason: str
) -> None:
    config = _set(make_config(), path, value)
    with pytest.raises(SpecError) as info:
        check(config, bundle)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message


def test_a_namespace_path_must_be_a_namespace_of_that_type(make_config: Any, bundle: str) -> None:
    config = make_config()
    config["linux"]["namespaces"].append({"type": "cgroup", "path": "/not/a/namespace"})
    with pytest.raises(SpecError, match="is not a namespace"):
        check(config, bundle)
    config = make_config()
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/run/netns/x"}
    with pytest.raises(SpecError, match="another type"):
        check(config, bundle, {"/run/netns/x": CLONE_NEWIPC})
    cfg = check(config, bundle, {"/run/netns/x": CLONE_NEWNET})
    assert cfg.namespace("network").path == "/run/netns/x"


def test_scheduler_io_priority_and_personality_become_syscall_arguments(
    make_config: Any, bundle: str
) -> None:
    config = make_config()
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    config["linux"]["personality"] = {"domain": "LINUX32"}
    proc = check(config, bundle).process
    assert proc.scheduler == (3, 0, 7, 0, 0, 0, 0)  # unset numbers mean 0 (config.md)
    assert proc.io_priority == (2 << 13) | 6  # ioprio_set(2): class << 13 | level
    assert proc.personality == 0x0008  # PER_LINUX32


def test_a_config_that_is_not_an_object_is_refused(bundle: str) -> None:
    with pytest.raises(SpecError, match="must be an object"):
        check([], bundle)


# Values a fuzzed field may take: every JSON type, a few edge cases of each.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(prefix + key)
            out += _paths(item, prefix + key + ".")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.append(prefix + str(i))
            out += _paths(item, prefix + str(i) + ".")
    return out


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_any_corrupted_config_gives_a_spec_error_or_a_config(
    data: Any, make_config: Any, bundle: str
) -> None:
    """The bad-input corpus: a valid config with one field replaced by arbitrary JSON never
    raises anything but SpecError (a TypeError or KeyError would reach the user as a
    traceback). The fixtures are read-only factories, so sharing them across examples is fine."""
    config = make_config()
    path = data.draw(st.sampled_from(_paths(config)), label="field")
    value = data.draw(JSON_VALUES, label="value")
    _set(config, path, value)
    try:
        check(copy.deepcopy(config), bundle)
    except SpecError as exc:
        assert "\n" not in str(exc)


def test_an_unknown_capability_is_a_warning_and_left_out(make_config: Any, bundle: str) -> None:
    raw = make_config()
    raw["process"]["capabilities"]["bounding"] = ["CAP_KILL", "CAP_NOPE"]
    cfg = check(raw, bundle)
    assert cfg.process.capabilities["bounding"] == ["CAP_KILL"]
    assert cfg.process.warnings == [
        "process.capabilities.bounding: unknown capability CAP_NOPE, ignored"
    ]


@pytest.mark.parametrize(
    ("net_devices", "reason"),
    [
        ({"eth0": {"name": "a/b"}}, "not a network device name"),
        ({"eth0": {"name": "x" * 16}}, "not a network device name"),
        ({"eth0": {"name": "e%d%d"}}, "not a network device name"),
        ({"eth0": {"name": "c0"}, "eth1": {"name": "c0"}}, "the same name"),
        ({"eth0": "c0"}, "must be an object"),
    ],
)
def test_bad_net_devices_are_refused(
    make_config: Any, bundle: str, net_devices: Any, reason: str
) -> None:
    raw = make_config()
    raw["linux"]["netDevices"] = net_devices
    with pytest.raises(SpecError, match=reason):
        check(raw, bundle)


def test_net_devices_are_runtime_and_container_names(make_config: Any, bundle: str) -> None:
    raw = make_config()
    raw["linux"]["netDevices"] = {"eth0": {"name": "ctr%d"}, "ens4": {}}
    assert check(raw, bundle).net_devices == [("eth0", "ctr%d"), ("ens4", "ens4")]
    del raw["linux"]["namespaces"][[n["type"] for n in raw["linux"]["namespaces"]].index(
        "network")]  # fmt: skip
    with pytest.raises(SpecError, match="needs a network namespace"):
        check(raw, bundle)


def test_a_relative_mount_destination_is_relative_to_the_root(
    make_config: Any, bundle: str
) -> None:
    # config.md "Mounts": a relative destination (deprecated) is taken relative to "/".
    raw = make_config()
    raw["mounts"][0]["destination"] = "srv/rel/../data"
    assert check(raw, bundle).mounts[0].destination == "/srv/data"


def test_console_size_is_rows_and_columns_within_a_winsize(make_config: Any, bundle: str) -> None:
    config = make_config()
    config["process"]["consoleSize"] = {"height": 37, "width": 123}
    assert check(config, bundle).process.console_size == (37, 123)
    assert check(make_config(), bundle).process.console_size is None
    # struct winsize holds unsigned shorts: a larger size cannot be applied (TIOCSWINSZ).
    config["process"]["consoleSize"] = {"height": 70000, "width": 80}
    with pytest.raises(SpecError, match=r"consoleSize\.height"):
        check(config, bundle)
