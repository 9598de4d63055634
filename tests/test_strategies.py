"""The strategy library generates what it promises (no containers, no root)."""

import posixpath
import re
import resource
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import bulkhead.strategies as strategies
from bulkhead.spec import (
    DEFAULT_PATH_ENV,
    DOCKER_DEFAULT_CAPABILITIES,
    DOCKER_MASKED_PATHS,
    DOCKER_READONLY_PATHS,
    SCHEMA_DIR_ENV,
    Capabilities,
    Mount,
    Namespace,
    Process,
    Rlimit,
    Spec,
    User,
    default_spec,
    find_schema_dir,
    validator,
)
from bulkhead.strategies import (
    ANNOTATION_PREFIX,
    DEFAULT_PROGRAM,
    HOST_NAME_MAX,
    RESERVED_ENV_NAMES,
    absolute_paths,
    annotations,
    c_strings,
    capabilities,
    capability_sets,
    dns_labels,
    domainnames,
    env_names,
    env_vars,
    hostnames,
    namespace_sets,
    path_subsets,
    process_args,
    processes,
    rlimit_bounds,
    rlimits,
    specs,
    users,
)

SETTINGS = settings(max_examples=40, deadline=None)

needs_schema = pytest.mark.skipif(
    find_schema_dir() is None,
    reason=(
        "runtime-spec schemas not found: set "
        f"{SCHEMA_DIR_ENV}=/path/to/runtime-spec/schema (e.g. ../shared/oci-runtime-spec/schema)"
    ),
)

LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def assert_valid_config(spec: Spec) -> None:
    doc = spec.to_json_dict()
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator("config-schema.json").iter_errors(doc)
    ]
    assert errors == []
    assert Spec.from_json_dict(doc) == spec


# --- every public strategy yields something a valid config can hold ----------------------------


Place = Callable[[Spec, Any], Spec]


def top_level(field: str, wrap: Callable[[Any], Any] = lambda v: v) -> Place:
    return lambda spec, value: spec.model_copy(update={field: wrap(value)})


def in_process(field: str, wrap: Callable[[Any], Any] = lambda v: v) -> Place:
    def place(spec: Spec, value: Any) -> Spec:
        assert spec.process is not None
        setattr(spec.process, field, wrap(value))
        return spec

    return place


def in_linux(field: str, wrap: Callable[[Any], Any] = lambda v: v) -> Place:
    def place(spec: Spec, value: Any) -> Spec:
        assert spec.linux is not None
        setattr(spec.linux, field, wrap(value))
        return spec

    return place


def with_tmpfs_at(spec: Spec, destination: str) -> Spec:
    mounts = [*(spec.mounts or []), Mount(destination=destination, type="tmpfs", source="tmpfs")]
    return spec.model_copy(update={"mounts": mounts})


# strategy name -> (an instance, how a drawn value goes into default_spec()'s output)
PLACEMENTS: dict[str, tuple[st.SearchStrategy[Any], Place]] = {
    "hostnames": (hostnames(), top_level("hostname")),
    "domainnames": (domainnames(), top_level("domainname")),
    "dns_labels": (dns_labels(), top_level("hostname")),
    "absolute_paths": (absolute_paths(), with_tmpfs_at),
    "path_subsets": (path_subsets(DOCKER_MASKED_PATHS), in_linux("masked_paths")),
    "c_strings": (c_strings(), in_process("args", lambda v: ["sh", v])),
    "env_names": (env_names(), in_process("env", lambda v: [f"{v}=1"])),
    "env_vars": (env_vars(), in_process("env")),
    "process_args": (process_args(), in_process("args")),
    "users": (users(), in_process("user")),
    "capability_sets": (
        capability_sets(),
        in_process("capabilities", lambda v: Capabilities(bounding=v, permitted=v, effective=v)),
    ),
    "capabilities": (capabilities(), in_process("capabilities")),
    "rlimits": (rlimits(), in_process("rlimits")),
    "processes": (processes(), top_level("process")),
    "namespace_sets": (
        namespace_sets(required=("uts",)),
        in_linux("namespaces", lambda v: [Namespace(type=t) for t in v]),
    ),
    "annotations": (annotations(), top_level("annotations")),
    "specs": (specs(), lambda _spec, value: value),
}


def test_every_public_strategy_has_a_placement() -> None:
    public = {
        name
        for name in strategies.__all__
        if name.islower() and name != "rlimit_bounds"  # constants and a plain helper
    }
    assert public == set(PLACEMENTS)


@needs_schema
@pytest.mark.parametrize("name", sorted(PLACEMENTS))
def test_generated_values_validate_in_a_default_spec(name: str) -> None:
    strategy, place = PLACEMENTS[name]

    @SETTINGS
    @given(strategy)
    def check(value: Any) -> None:
        assert_valid_config(place(default_spec(), value))

    check()


# --- names --------------------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(hostnames(), domainnames()))
def test_host_and_domain_names_meet_kernel_and_rfc_limits(name: str) -> None:
    assert 1 <= len(name.encode()) <= HOST_NAME_MAX  # __NEW_UTS_LEN
    assert all(LABEL.match(label) for label in name.split(".")), name


@SETTINGS
@given(st.data())
def test_host_names_respect_a_smaller_budget(data: st.DataObject) -> None:
    limit = data.draw(st.integers(1, HOST_NAME_MAX))
    assert len(data.draw(hostnames(max_length=limit))) <= limit


def test_host_name_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument):
        hostnames(max_length=HOST_NAME_MAX + 1).example()
    with pytest.raises(InvalidArgument):
        domainnames(max_labels=0).example()


# --- paths --------------------------------------------------------------------------------------


@SETTINGS
@given(absolute_paths())
def test_absolute_paths_are_clean(path: str) -> None:
    assert path.startswith("/") and path != "/"
    assert posixpath.normpath(path) == path
    parts = path.split("/")[1:]
    assert all(part not in ("", ".", "..") for part in parts)
    assert "\x00" not in path
    assert len(path) <= 4 * 17


@SETTINGS
@given(absolute_paths(parent="/mnt/x", max_depth=2))
def test_absolute_paths_stay_under_their_parent(path: str) -> None:
    assert path.startswith("/mnt/x/")
    assert path.count("/") <= 4


CANDIDATES = ["/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/keys"]


@SETTINGS
@given(path_subsets(CANDIDATES, min_size=2))
def test_path_subsets_are_unique_sorted_and_drawn_from_candidates(paths: list[str]) -> None:
    assert len(paths) >= 2
    assert len(set(paths)) == len(paths)
    assert paths == sorted(paths)
    assert set(paths) <= set(CANDIDATES)


@SETTINGS
@given(path_subsets(DOCKER_READONLY_PATHS, max_size=2))
def test_path_subsets_respect_max_size(paths: list[str]) -> None:
    assert 1 <= len(paths) <= 2


@pytest.mark.parametrize(
    ("candidates", "min_size"),
    [([], 1), (["relative/path"], 1), (["/a", "/b"], 3)],
)
def test_path_subsets_arguments_are_checked(candidates: list[str], min_size: int) -> None:
    with pytest.raises(InvalidArgument):
        path_subsets(candidates, min_size=min_size)


def test_absolute_paths_arguments_are_checked() -> None:
    for parent in ("relative", "/a/../b", "//a", "/a/"):
        with pytest.raises(InvalidArgument):
            absolute_paths(parent=parent)


# --- process ------------------------------------------------------------------------------------


@SETTINGS
@given(env_vars())
def test_env_vars_have_unique_valid_names(env: list[str]) -> None:
    names = [entry.partition("=")[0] for entry in env]
    assert all("=" in entry and "\x00" not in entry for entry in env)
    assert all(ENV_NAME.match(name) for name in names)
    assert len(set(names)) == len(names)
    assert not set(names) & RESERVED_ENV_NAMES
    assert len(env) <= 5


@SETTINGS
@given(process_args())
def test_process_args_start_with_the_program(args: list[str]) -> None:
    assert args[: len(DEFAULT_PROGRAM)] == list(DEFAULT_PROGRAM)
    assert len(args) <= len(DEFAULT_PROGRAM) + 4
    assert all("\x00" not in arg for arg in args)


def test_process_args_need_a_program() -> None:
    with pytest.raises(InvalidArgument):
        process_args(())


@SETTINGS
@given(rlimits())
def test_rlimits_are_applicable_here(limits: list[Rlimit]) -> None:
    bounds = rlimit_bounds()
    assert len({limit.type for limit in limits}) == len(limits)
    for limit in limits:
        least, greatest = bounds[limit.type]
        assert least <= limit.soft <= limit.hard <= greatest
        _, host_hard = resource.getrlimit(getattr(resource, limit.type))
        assert host_hard == resource.RLIM_INFINITY or limit.hard <= host_hard
        if limit.type == "RLIMIT_NOFILE":
            assert limit.hard <= 1024  # no CAP_SYS_RESOURCE: the hard limit cannot be raised


@SETTINGS
@given(capability_sets())
def test_capability_sets_are_subsets_of_the_defaults(names: list[str]) -> None:
    assert set(names) <= set(DOCKER_DEFAULT_CAPABILITIES)
    assert names == sorted(set(names))


@SETTINGS
@given(capabilities())
def test_capabilities_use_one_set_and_no_inheritable_or_ambient(caps: Capabilities) -> None:
    assert caps.bounding == caps.effective == caps.permitted
    assert caps.inheritable is None and caps.ambient is None


def test_capability_sets_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument):
        capability_sets(["kill"])
    with pytest.raises(InvalidArgument):
        capability_sets(["CAP_KILL"], min_size=2)


@SETTINGS
@given(users())
def test_users_have_distinct_supplementary_groups(user: User) -> None:
    assert 0 <= user.uid <= 65534 and 0 <= user.gid <= 65534
    if user.additional_gids is not None:
        assert user.additional_gids
        assert len(set(user.additional_gids)) == len(user.additional_gids)


@SETTINGS
@given(processes())
def test_processes_keep_path_first_and_run_from_root(process: Process) -> None:
    assert process.env is not None and process.env[0] == DEFAULT_PATH_ENV
    names = [entry.partition("=")[0] for entry in process.env]
    assert len(set(names)) == len(names)
    assert process.cwd == "/"
    assert process.terminal is False
    assert process.args is not None and process.args[0] == "sh"


# --- linux --------------------------------------------------------------------------------------


@SETTINGS
@given(namespace_sets())
def test_namespace_sets_always_create_mount_and_never_user_or_time(types: list[str]) -> None:
    assert types[0] == "mount"
    assert len(set(types)) == len(types)
    assert set(types) <= {"mount", "pid", "network", "ipc", "uts", "cgroup"}


@SETTINGS
@given(namespace_sets(required=("uts", "mount"), user=True, time=True))
def test_namespace_sets_honour_required_and_opt_ins(types: list[str]) -> None:
    assert types[:2] == ["mount", "uts"]
    assert len(set(types)) == len(types)
    assert set(types) <= {"mount", "pid", "network", "ipc", "uts", "cgroup", "user", "time"}


def test_namespace_sets_can_reach_the_opt_ins() -> None:
    seen: set[str] = set()

    @settings(max_examples=100, deadline=None)
    @given(namespace_sets(user=True, time=True))
    def collect(types: list[str]) -> None:
        seen.update(types)

    collect()
    assert {"user", "time"} <= seen


# --- whole configs ------------------------------------------------------------------------------


@SETTINGS
@given(annotations())
def test_annotations_use_our_prefix(values: dict[str, str]) -> None:
    assert len(values) <= 4
    for key, value in values.items():
        assert key.startswith(ANNOTATION_PREFIX) and len(key) > len(ANNOTATION_PREFIX)
        assert "\x00" not in value


def test_annotations_refuse_the_reserved_namespace() -> None:
    with pytest.raises(InvalidArgument):
        annotations(prefix="org.opencontainers.x.")


@SETTINGS
@given(specs())
def test_specs_stay_runnable(spec: Spec) -> None:
    assert spec.process is not None and spec.linux is not None
    assert spec.linux.namespaces is not None
    assert {"mount", "uts"} <= {ns.type for ns in spec.linux.namespaces}
    assert set(spec.linux.masked_paths or []) <= set(DOCKER_MASKED_PATHS)
    assert set(spec.linux.readonly_paths or []) <= set(DOCKER_READONLY_PATHS)
    rlimit_types = [limit.type for limit in spec.process.rlimits or []]
    assert len(set(rlimit_types)) == len(rlimit_types)
    assert spec.hostname is not None and len(spec.hostname) <= HOST_NAME_MAX
    assert spec.process.env is not None and spec.process.env[0] == DEFAULT_PATH_ENV


@SETTINGS
@given(specs(oci_version="1.0.2"))
def test_specs_declare_the_requested_version(spec: Spec) -> None:
    assert spec.to_json_dict()["ociVersion"] == "1.0.2"
