"""The features document (features.md, features-linux.md, runtime-spec v1.3.0).

What ``<runtime> features`` declares is judged against what the runtime then does: every
declared namespace type, capability, mount option, seccomp action, operator, architecture and
flag is used in a config that must go through (and, where the kernel shows it, take effect:
the namespace is the container's own, the capability is in the process's sets, the mount flag
is in mountinfo); every declared hook kind runs at its phase. Each check first tries all the
declared values in one container and, only if that fails, each value alone, so a failure lists
every offending value. A runtime without a ``features`` verb (crun 1.8) skips, saying so.

"Recognised" cannot be told from "accepted" by a runtime that accepts anything, so where the
kernel shows no effect (seccomp), the same config with a value no spec defines must be refused:
then acceptance means the value was understood.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import ContainerFactory, Result
from bulkhead.disputes import Ask
from bulkhead.runtime import RuntimeClient
from conformance._features import (
    assert_none,
    declared,
    features,
    offenders,
    run_config,
    why_failed,
)
from conformance._hooks import CREATE_PHASE, KINDS, PROGRAM, hooked, program
from conformance._mounts import PRINT_MOUNTINFO, split_output, top_mount
from conformance._namespaces import HOST, namespaces_of
from conformance._seccomp import POOL, Agent
from conformance._support import (
    refused,
    sh,
    stoppable,
    validate_against,
    wait_ready,
)

# --- SemVer 2.0.0 (semver.org §2, §9, §11) -----------------------------------------------------

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key: release numbers, then a final release after its pre-releases, whose dot
    separated identifiers compare numerically when numeric, else in ASCII order, numeric ones
    first, and a longer list after its prefix (§11). Build metadata is ignored (§10)."""
    found = _SEMVER.match(version)
    assert found, f"{version!r} is not a SemVer 2.0.0 version (config.md: ociVersion is SemVer)"
    major, minor, patch, pre = found.groups()
    release = (int(major), int(minor), int(patch))
    if pre is None:
        return (release, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (release, 0, ids)


def release_of(version: str) -> tuple[int, ...]:
    return semver_key(version)[0]  # type: ignore[no-any-return]


@pytest.mark.spec("features.specification-version.1", "features.specification-version.3")
def test_features_names_the_oldest_and_newest_spec_versions(runtime: RuntimeClient) -> None:
    doc = features(runtime)
    for key in ("ociVersionMin", "ociVersionMax"):
        assert isinstance(doc.get(key), str) and doc[key], (
            f"features has no string {key} (features.md: REQUIRED): {doc.get(key)!r}"
        )
        semver_key(doc[key])


@pytest.mark.spec("features.specification-version.5")
def test_oci_version_max_is_not_below_oci_version_min(runtime: RuntimeClient) -> None:
    doc = features(runtime)
    low, high = doc.get("ociVersionMin"), doc.get("ociVersionMax")
    assert isinstance(low, str) and isinstance(high, str), (low, high)
    assert semver_key(high) >= semver_key(low), f"ociVersionMax {high} < ociVersionMin {low}"


def _accepts_as_oci_version(containers: ContainerFactory, key: str) -> None:
    version = features(containers.client).get(key)
    assert isinstance(version, str), f"features has no string {key}: {version!r}"
    spec = containers.spec(sh(stoppable()))
    spec.oci_version = version
    with containers.container(spec) as ctr:
        ctr.start()
        wait_ready(ctr)  # the program ran: created and started with that ociVersion
        assert ctr.status == "running"


@pytest.mark.spec("features.specification-version.2")
def test_the_runtime_accepts_its_oci_version_min_in_a_config(containers: ContainerFactory) -> None:
    _accepts_as_oci_version(containers, "ociVersionMin")


@pytest.mark.spec("features.specification-version.4")
def test_the_runtime_accepts_its_oci_version_max_in_a_config(containers: ContainerFactory) -> None:
    _accepts_as_oci_version(containers, "ociVersionMax")


# Every property features.md and features-linux.md define (v1.3.0), by dotted path, with the
# release that introduced it. The document itself arrived in 1.1.0; where the release of a later
# addition is uncertain the earlier candidate is named, so the check errs towards passing.
# ``annotations`` is a free map: its keys are not properties.
PROPERTIES: dict[str, str] = {
    **dict.fromkeys(
        [
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "annotations",
            "linux",
            "linux.namespaces",
            "linux.capabilities",
            "linux.cgroup",
            "linux.cgroup.v1",
            "linux.cgroup.v2",
            "linux.cgroup.systemd",
            "linux.cgroup.systemdUser",
            "linux.cgroup.rdma",
            "linux.seccomp",
            "linux.seccomp.enabled",
            "linux.seccomp.actions",
            "linux.seccomp.operators",
            "linux.seccomp.archs",
            "linux.seccomp.knownFlags",
            "linux.seccomp.supportedFlags",
            "linux.apparmor",
            "linux.apparmor.enabled",
            "linux.selinux",
            "linux.selinux.enabled",
            "linux.intelRdt",
            "linux.intelRdt.enabled",
            "linux.mountExtensions",
            "linux.mountExtensions.idmap",
            "linux.mountExtensions.idmap.enabled",
        ],
        "1.1.0",
    ),
    "potentiallyUnsafeConfigAnnotations": "1.2.0",
    "linux.intelRdt.schemata": "1.2.1",
    "linux.netDevices": "1.2.1",
    "linux.netDevices.enabled": "1.2.1",
    "linux.intelRdt.monitoring": "1.3.0",
    "linux.memoryPolicy": "1.3.0",
    "linux.memoryPolicy.modes": "1.3.0",
    "linux.memoryPolicy.flags": "1.3.0",
}
FREE_MAPS = frozenset({"annotations"})


def properties_of(doc: dict[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in doc.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and path not in FREE_MAPS:
            yield from properties_of(value, f"{path}.")


@pytest.mark.spec("features.specification-version.6")
def test_features_is_valid_and_has_only_properties_the_spec_defines(
    runtime: RuntimeClient,
) -> None:
    doc = features(runtime)
    validate_against("features-schema.json", doc)  # which also checks features-linux.json
    unknown = [p for p in properties_of(doc) if p not in PROPERTIES]
    assert not unknown, f"features has properties runtime-spec 1.3.0 does not define: {unknown}"


@pytest.mark.spec("features.specification-version.6")
def test_features_has_no_property_newer_than_its_oci_version_max(runtime: RuntimeClient) -> None:
    doc = features(runtime)
    high = doc.get("ociVersionMax")
    assert isinstance(high, str), f"features has no string ociVersionMax: {high!r}"
    # A pre-release of a version is judged as that version (the drafts before a release
    # carry what it defines), so only the release numbers count here.
    newer = [
        f"{p} (since {PROPERTIES[p]})"
        for p in properties_of(doc)
        if p in PROPERTIES
        and p not in ("ociVersionMin", "ociVersionMax")
        and release_of(PROPERTIES[p]) > release_of(high)
    ]
    assert not newer, (
        f"features declares ociVersionMax {high} but has properties that version does not "
        f"define: {newer}"
    )


@pytest.mark.spec("features.annotations.2")
def test_features_annotations_are_a_map_of_strings(runtime: RuntimeClient) -> None:
    doc = features(runtime)
    if doc.get("annotations") is None:
        pytest.skip("the features document has no annotations")
    notes = doc["annotations"]
    assert isinstance(notes, dict), f"features annotations is not an object: {notes!r}"
    # config.md "Annotations": keys are non-empty strings, values strings; duplicate keys are
    # refused while parsing (see features()).
    bad = {k: v for k, v in notes.items() if not k or not isinstance(v, str)}
    assert not bad, f"annotations with an empty key or a value that is not a string: {bad}"


# --- namespaces (features-linux.md "Namespaces") --------------------------------------------------


@pytest.mark.spec("features-linux.namespaces.1")
def test_every_declared_namespace_type_gives_the_container_that_namespace(
    containers: ContainerFactory,
) -> None:
    kinds = declared(features(containers.client), "linux.namespaces")
    host = namespaces_of(HOST)
    # "Including namespaces that might not be supported by the host": those are left out.
    usable = [k for k in kinds if k in host]

    def attempt(subset: Sequence[str]) -> str | None:
        spec = containers.spec(sh(stoppable()))
        assert spec.linux is not None and spec.linux.namespaces is not None
        have = {ns.type for ns in spec.linux.namespaces}
        config = spec.to_json_dict()
        config["linux"]["namespaces"] += [{"type": k} for k in subset if k not in have]
        if "user" in subset:
            # config-linux.md: a new user namespace needs mappings; identity keeps file owners.
            for key in ("uidMappings", "gidMappings"):
                config["linux"][key] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        cid = containers.new_id()
        config["linux"]["cgroupsPath"] = f"/{cid}"
        with containers.container(config, create=False) as ctr:
            call = ctr.create(check=False)
            if refused(call):
                return f"create refused: {call.stderr.strip()[-300:]}"
            ctr.start()
            wait_ready(ctr)
            seen = namespaces_of(ctr.pid)
            shared = [k for k in subset if seen.get(k) == host[k]]
            return f"the container shares the host's {shared}" if shared else None

    assert_none(
        offenders(usable, attempt), "declared namespace types that do not give the container one"
    )


# --- capabilities (features-linux.md "Capabilities") ---------------------------------------------

# capability.h: the bit of each capability in /proc/<pid>/status Cap* masks, from 0 on.
CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_BITS = {f"CAP_{name}": bit for bit, name in enumerate(CAP_NAMES)}


def _own_mask(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.spec("features-linux.capabilities.1")
def test_every_declared_capability_is_granted_when_configured(
    containers: ContainerFactory,
) -> None:
    caps = declared(features(containers.client), "linux.capabilities")
    # "Including capabilities that might not be supported by the host": one the suite does not
    # hold itself (no CAP_SYS_RESOURCE here) cannot be granted, so it is listed in the bounding
    # set only, which keeps (never raises) it; a name newer than this table likewise.
    held = _own_mask("CapEff") & _own_mask("CapBnd")
    grantable = [c for c in caps if c in CAP_BITS and held >> CAP_BITS[c] & 1]
    others = [c for c in caps if c not in grantable]

    def attempt(subset: Sequence[str]) -> str | None:
        def change(config: dict[str, Any], _: Path) -> None:
            sets = config["process"]["capabilities"]
            for name in ("bounding", "effective", "permitted"):
                sets[name] = list(dict.fromkeys([*sets.get(name, []), *subset]))
            sets["bounding"] = list(dict.fromkeys([*sets["bounding"], *others]))

        result = run_config(containers, sh("grep '^Cap' /proc/$$/status"), change)
        if result.exit_code != 0:
            return why_failed(result)
        masks = dict(line.split(":\t") for line in result.stdout.splitlines() if ":\t" in line)
        missing = [
            f"{c} not in {field}"
            for c in subset
            for field in ("CapBnd", "CapEff", "CapPrm")
            if not int(masks.get(field, "0"), 16) >> CAP_BITS[c] & 1
        ]
        return "; ".join(missing) or None

    assert_none(offenders(grantable, attempt), "declared capabilities that were not granted")


# --- mount options (features.md "Mount Options") ---------------------------------------------

# The per-mount flags mountinfo shows for an option (proc(5)): present, or absent.
SHOWS = {
    **{o: ("ro", True) for o in ("ro", "rro")},
    **{o: ("nosuid", True) for o in ("nosuid", "rnosuid")},
    **{o: ("nodev", True) for o in ("nodev", "rnodev")},
    **{o: ("noexec", True) for o in ("noexec", "rnoexec")},
    **{o: ("noatime", True) for o in ("noatime", "rnoatime")},
    **{o: ("nodiratime", True) for o in ("nodiratime", "rnodiratime")},
    **{o: ("nosymfollow", True) for o in ("nosymfollow", "rnosymfollow")},
    **{o: ("relatime", False) for o in ("strictatime", "rstrictatime")},
}
TAGS = {o: "shared" for o in ("shared", "rshared")} | {
    o: "unbindable" for o in ("unbindable", "runbindable")
}
BIND = frozenset({"bind", "rbind"})
MOUNT_ROOT = "/bulkhead-options"


def _point(option: str) -> str:
    return f"{MOUNT_ROOT}/{option}"


def _mounts_for(option: str, source: Path) -> list[dict[str, Any]]:
    point = _point(option)
    if option in BIND:
        return [{"destination": point, "type": "bind", "source": str(source), "options": [option]}]
    tmpfs = {"destination": point, "type": "tmpfs", "source": "tmpfs"}
    if option == "remount":
        # MS_REMOUNT changes an existing mount: an earlier entry makes the one it changes.
        return [{**tmpfs, "options": []}, {**tmpfs, "options": ["remount"]}]
    return [{**tmpfs, "options": [option]}]


@pytest.mark.spec("features.mount-options.1")
def test_every_declared_mount_option_is_recognised(containers: ContainerFactory) -> None:
    options = declared(features(containers.client), "mountOptions")

    def attempt(subset: Sequence[str]) -> str | None:
        def change(config: dict[str, Any], bundle: Path) -> None:
            for option in subset:
                config["mounts"] += _mounts_for(option, bundle / "bind-source")

        result = run_config(containers, sh(PRINT_MOUNTINFO), change)
        if result.exit_code != 0:
            return why_failed(result)
        _, entries = split_output(result.stdout)
        problems = []
        for option in subset:
            entry = top_mount(entries, _point(option))
            if entry is None:
                problems.append(f"{option}: nothing mounted at {_point(option)}")
            elif option in SHOWS:
                flag, present = SHOWS[option]
                if (flag in entry.options) != present:
                    problems.append(f"{option}: mountinfo shows {sorted(entry.options)}")
            elif option in TAGS and entry.tag(TAGS[option]) is None:
                problems.append(f"{option}: mountinfo shows tags {entry.tags}")
        return "; ".join(problems) or None

    assert_none(offenders(options, attempt), "declared mount options that were not recognised")


# --- seccomp (features-linux.md "Seccomp") -----------------------------------------------------

NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
# libseccomp cannot put an architecture of the other byte order in one filter with the native
# one (seccomp_arch_add fails with EDOM): on this host those are not usable at all.
BIG_ENDIAN = frozenset(
    f"SCMP_ARCH_{a}"
    for a in ("MIPS", "MIPS64", "MIPS64N32", "PPC", "PPC64", "S390", "S390X", "PARISC",
              "PARISC64", "M68K", "SHEB")
)  # fmt: skip


@functools.cache
def _host_libseccomp_knows(arch: str) -> bool:
    """Whether the host's libseccomp resolves ``arch`` (seccomp_arch_resolve_name(3) answers 0
    for a name it was built without: SCMP_ARCH_LOONGARCH64 before libseccomp 2.5.5)."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return True  # nothing to ask: judge the runtime alone
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    return bool(lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode()))


def _native_arch() -> str:
    machine = os.uname().machine
    if machine not in NATIVE:
        pytest.skip(f"no seccomp architecture name known for this host's machine {machine}")
    return NATIVE[machine]


def _seccomp(**fields: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [_native_arch()], **fields}


def _rule(index: int, action: str = "SCMP_ACT_ERRNO", **more: Any) -> dict[str, Any]:
    # A call busybox `true` and the runtime's last steps never make (conformance/_seccomp.py).
    return {"names": [POOL[index % len(POOL)]], "action": action, **more}


def seccomp_attempt(
    containers: ContainerFactory, build: Callable[[Sequence[str], Path], dict[str, Any]]
) -> Callable[[Sequence[str]], str | None]:
    """An ``attempt`` running ``true`` under the filter ``build(values, bundle)`` makes."""

    def attempt(values: Sequence[str]) -> str | None:
        def change(config: dict[str, Any], bundle: Path) -> None:
            config["linux"]["seccomp"] = build(values, bundle)

        result = run_config(containers, ["true"], change)
        return None if result.exit_code == 0 else why_failed(result)

    return attempt


def check_seccomp_values(
    containers: ContainerFactory,
    values: Sequence[str],
    bogus: str,
    build: Callable[[Sequence[str], Path], dict[str, Any]],
    what: str,
) -> None:
    attempt = seccomp_attempt(containers, build)
    assert_none(offenders(values, attempt), f"declared seccomp {what} that were refused")
    # The control: a name no spec defines is refused, so the runtime reads this field and
    # going through above means the declared names were understood, not ignored.
    assert values, f"no declared seccomp {what} to check"
    assert attempt([bogus]) is not None, (
        f"the runtime also accepts the undefined seccomp {what[:-1]} {bogus}: acceptance of the "
        "declared ones shows nothing"
    )


def _seccomp_enabled(doc: dict[str, Any]) -> None:
    seccomp = (doc.get("linux") or {}).get("seccomp") or {}
    if seccomp.get("enabled") is False:
        pytest.skip("the features document says seccomp is not enabled")


@pytest.mark.spec("features-linux.seccomp.1")
def test_every_declared_seccomp_action_is_recognised(
    containers: ContainerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    doc = features(containers.client)
    _seccomp_enabled(doc)
    actions = declared(doc, "linux.seccomp.actions")
    socket_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    # SCMP_ACT_NOTIFY needs a listener (config-linux.md "Seccomp": listenerPath).
    with Agent(socket_dir / f"bh-features-{os.getpid()}.sock") as agent:

        def build(values: Sequence[str], bundle: Path) -> dict[str, Any]:
            more = {"listenerPath": str(agent.path)} if "SCMP_ACT_NOTIFY" in values else {}
            rules = [_rule(i, action) for i, action in enumerate(values)]
            return _seccomp(syscalls=rules, **more)

        check_seccomp_values(containers, actions, "SCMP_ACT_BOGUS", build, "actions")


@pytest.mark.spec("features-linux.seccomp.2")
def test_every_declared_seccomp_operator_is_recognised(containers: ContainerFactory) -> None:
    doc = features(containers.client)
    _seccomp_enabled(doc)
    operators = declared(doc, "linux.seccomp.operators")

    def build(values: Sequence[str], _: Path) -> dict[str, Any]:
        rules = [
            _rule(i, args=[{"index": 0, "value": 1, "valueTwo": 1, "op": op}])
            for i, op in enumerate(values)
        ]
        return _seccomp(syscalls=rules)

    check_seccomp_values(containers, operators, "SCMP_CMP_BOGUS", build, "operators")


@pytest.mark.spec("features-linux.seccomp.3")
def test_every_declared_seccomp_architecture_is_recognised(
    containers: ContainerFactory,
) -> None:
    doc = features(containers.client)
    _seccomp_enabled(doc)
    native = _native_arch()
    other_order = BIG_ENDIAN if sys.byteorder == "little" else frozenset()
    # Host support aside: an architecture libseccomp cannot add here is not a refusal to judge.
    archs = [
        a
        for a in declared(doc, "linux.seccomp.archs")
        if a not in other_order and _host_libseccomp_knows(a)
    ]

    def build(values: Sequence[str], _: Path) -> dict[str, Any]:
        return _seccomp(architectures=list(dict.fromkeys([native, *values])), syscalls=[_rule(0)])

    check_seccomp_values(containers, archs, "SCMP_ARCH_BOGUS", build, "architectures")


@pytest.mark.spec("features-linux.seccomp.4")
def test_every_declared_seccomp_flag_is_recognised(containers: ContainerFactory) -> None:
    doc = features(containers.client)
    _seccomp_enabled(doc)
    known = declared(doc, "linux.seccomp.knownFlags")
    supported = set(declared(doc, "linux.seccomp.supportedFlags") if _has_supported(doc) else [])
    # A known flag the kernel or libseccomp lacks may fail (features-linux.md: supportedFlags
    # may be a subset); those are judged by test_every_supported_seccomp_flag_works.
    flags = [f for f in known if f in supported] if supported else known

    def build(values: Sequence[str], _: Path) -> dict[str, Any]:
        return _seccomp(flags=list(values), syscalls=[_rule(0)])

    check_seccomp_values(containers, flags, "SECCOMP_FILTER_FLAG_BOGUS", build, "flags")


def _has_supported(doc: dict[str, Any]) -> bool:
    return isinstance(((doc.get("linux") or {}).get("seccomp") or {}).get("supportedFlags"), list)


@pytest.mark.spec("features-linux.seccomp.5")
def test_every_supported_seccomp_flag_works(containers: ContainerFactory) -> None:
    doc = features(containers.client)
    _seccomp_enabled(doc)
    flags = declared(doc, "linux.seccomp.supportedFlags")

    def build(values: Sequence[str], _: Path) -> dict[str, Any]:
        return _seccomp(flags=list(values), syscalls=[_rule(0)])

    # Each alone as well as together: "supported" is a promise about every one of them.
    attempt = seccomp_attempt(containers, build)
    found = offenders(flags, attempt)
    found |= {f: why for f in flags if f not in found and (why := attempt([f])) is not None}
    assert_none(found, "supportedFlags that fail to create and start a container")


# --- hooks (features.md "Hooks") -----------------------------------------------------------------


@pytest.mark.spec("features.hooks.1")
def test_every_declared_hook_kind_runs_at_its_phase(
    containers: ContainerFactory, dispute: Ask
) -> None:
    kinds = declared(features(containers.client), "hooks")
    undefined = [k for k in kinds if k not in KINDS]
    assert not undefined, f"features declares hook kinds config.md does not define: {undefined}"
    plan = [(kind, kind) for kind in KINDS if kind in kinds]
    with hooked(containers, program(stoppable()), plan) as h:
        h.ctr.create()
        after_create = h.hooks.order()
        h.ctr.start()
        after_start = h.hooks.order()
        wait_ready(h.ctr)
        h.ctr.kill("TERM")
        h.ctr.wait_for("stopped")
        before_delete = h.hooks.order()
        h.ctr.delete()
        final = h.hooks.order()
    problems = []
    at = {name: i for i, name in enumerate(final)}
    ran_program = PROGRAM in at
    assert ran_program, f"the program did not run; order {final}"
    for kind in (k for k in KINDS if k in kinds):
        if kind not in at:
            problems.append(f"{kind} never ran")
        elif kind in CREATE_PHASE and kind not in after_create:
            problems.append(f"{kind} had not run when create returned ({after_create})")
        elif kind == "startContainer" and (kind in after_create or at[kind] > at[PROGRAM]):
            problems.append(f"startContainer ran outside start, before the program: {final}")
        elif kind == "poststart" and kind in after_create:
            # runc's phase for them (bulkhead.disputes "poststart-order"): during create, after
            # the create-phase hooks, before the program; accepted or not by the profile.
            try:
                dispute("poststart-order").require("during-create")
            except AssertionError as exc:
                problems.append(str(exc))
            if any(at[k] > at[kind] for k in CREATE_PHASE if k in at) or at[kind] > at[PROGRAM]:
                problems.append(f"poststart ran during create out of order: {after_create}")
        elif kind == "poststart" and (kind not in after_start or at[kind] < at[PROGRAM]):
            problems.append(
                f"poststart ran outside start after the program: after create {after_create}, "
                f"after start {after_start}, in all {final}"
            )
        elif kind == "poststop" and kind in before_delete:
            problems.append(f"poststop ran before delete: {before_delete}")
    assert not problems, "declared hooks not run at their phase: " + "; ".join(problems)


# --- mountExtensions (features-linux.md "MountExtensions") -------------------------------------

IDMAP_HOST_UID = 4242  # owner of the probed file on the host; the mount maps it to root


@pytest.mark.spec("features-linux.mountextensions.1")
def test_idmap_enabled_is_declared_exactly_when_mounts_are_idmapped(
    containers: ContainerFactory,
) -> None:
    doc = features(containers.client)
    idmap = ((doc.get("linux") or {}).get("mountExtensions") or {}).get("idmap") or {}
    enabled = idmap.get("enabled") is True

    def owner_seen(mapped: bool) -> Result:
        def change(config: dict[str, Any], bundle: Path) -> None:
            mount: dict[str, Any] = {
                "destination": "/bulkhead-idmap", "type": "bind",
                "source": str(bundle / "bind-source"), "options": ["rbind"],
            }  # fmt: skip
            if mapped:
                for key in ("uidMappings", "gidMappings"):
                    mount[key] = [{"containerID": 0, "hostID": IDMAP_HOST_UID, "size": 1}]
            config["mounts"].append(mount)

        def made(path: Path) -> None:
            (path / "file").touch()
            os.chown(path / "file", IDMAP_HOST_UID, IDMAP_HOST_UID)

        return run_config(containers, sh("stat -c %u /bulkhead-idmap/file"), change, made)

    control = owner_seen(False)
    assert control.exit_code == 0, why_failed(control)
    assert control.stdout.split() == [str(IDMAP_HOST_UID)], control.stdout
    result = owner_seen(True)
    honoured = result.exit_code == 0 and result.stdout.split() != [str(IDMAP_HOST_UID)]
    if honoured:
        assert enabled, (
            f"a mount's uidMappings took effect (owner seen as {result.stdout.strip()}), yet "
            f"features says mountExtensions.idmap {idmap or 'nothing'}"
        )
    if enabled:
        assert result.exit_code != 0 or honoured, (
            "features says idmap is enabled, yet the mount's uid/gidMappings were ignored "
            f"(owner still {result.stdout.strip()})"
        )
