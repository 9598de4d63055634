"""Whole configs: annotations and `Spec` objects built from `default_spec()`."""

# No `from __future__ import annotations` here: it would clash with the `annotations()` below.

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bulkhead.spec import (
    DEFAULT_PATH_ENV,
    DOCKER_MASKED_PATHS,
    DOCKER_READONLY_PATHS,
    OCI_VERSION,
    Spec,
    default_spec,
)
from bulkhead.strategies._environment import env_vars
from bulkhead.strategies._names import dns_labels, domainnames, hostnames
from bulkhead.strategies._paths import path_subsets
from bulkhead.strategies._process import process_args
from bulkhead.strategies._rlimits import rlimits
from bulkhead.strategies._text import c_strings

# Our own key namespace. config.md reserves org.opencontainers.* and asks for reverse-domain
# keys; runtimes act on some other prefixes (crun on run.oci.*, runc on
# org.systemd.property.* with the systemd cgroup driver), which random keys must never hit.
ANNOTATION_PREFIX = "test.bulkhead."


def annotations(
    *, prefix: str = ANNOTATION_PREFIX, max_size: int = 4
) -> st.SearchStrategy[dict[str, str]]:
    """`annotations` maps: keys `prefix` + dotted lowercase labels, values any non-NUL text."""
    if not prefix or prefix.startswith("org.opencontainers"):
        raise InvalidArgument(f"prefix={prefix!r} must be non-empty and not org.opencontainers")
    keys = st.lists(dns_labels(max_size=16, lowercase=True), min_size=1, max_size=3).map(
        lambda labels: prefix + ".".join(labels)
    )
    return st.dictionaries(keys, c_strings(max_size=32), max_size=max_size)


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    args: st.SearchStrategy[list[str]] | None = None,
    rootfs: str = "rootfs",
    oci_version: str = OCI_VERSION,
) -> Spec:
    """`default_spec()` with drawn args, env, hostname, domainname, annotations, rlimits and
    subsets of Docker's masked and read-only paths. The default namespaces stay, so the UTS
    namespace that hostname and domainname need is always there.

    `oci_version` is what the config declares; a runtime that only knows an older minor
    release may refuse a config claiming a newer one (config.md "Specification version").
    """
    spec = default_spec(
        draw(args if args is not None else process_args()),
        rootfs=rootfs,
        hostname=draw(hostnames()),
        env=[DEFAULT_PATH_ENV, *draw(env_vars())],
    )
    # default_spec() always fills both; the check narrows the Optional types for mypy.
    if spec.process is None or spec.linux is None:
        raise AssertionError("default_spec() must set process and linux")
    spec.oci_version = oci_version
    spec.domainname = draw(st.none() | domainnames())
    spec.annotations = draw(annotations()) or None
    spec.linux.masked_paths = draw(path_subsets(DOCKER_MASKED_PATHS, min_size=0))
    spec.linux.readonly_paths = draw(path_subsets(DOCKER_READONLY_PATHS, min_size=0))
    # Drawn limits replace the default of the same type (NOFILE); config.md wants types unique.
    merged = {limit.type: limit for limit in [*(spec.process.rlimits or []), *draw(rlimits())]}
    spec.process.rlimits = list(merged.values())
    return spec
