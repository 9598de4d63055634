"""Hypothesis strategies that build valid OCI runtime configs by construction.

Everything generated validates against the official runtime-spec schema and is meant to run
on this host (limits it cannot apply are never drawn); outputs stay small because each
example may cost a container. The per-domain modules behind this facade are private.
"""

from bulkhead.strategies._config import ANNOTATION_PREFIX, annotations, specs
from bulkhead.strategies._environment import RESERVED_ENV_NAMES, env_names, env_vars
from bulkhead.strategies._linux import namespace_sets
from bulkhead.strategies._names import HOST_NAME_MAX, LABEL_MAX, dns_labels, domainnames, hostnames
from bulkhead.strategies._paths import PORTABLE_FILENAME_CHARACTERS, absolute_paths, path_subsets
from bulkhead.strategies._process import (
    DEFAULT_PROGRAM,
    capabilities,
    capability_sets,
    process_args,
    processes,
    users,
)
from bulkhead.strategies._rlimits import rlimit_bounds, rlimits
from bulkhead.strategies._text import c_strings

__all__ = [
    "ANNOTATION_PREFIX",
    "DEFAULT_PROGRAM",
    "HOST_NAME_MAX",
    "LABEL_MAX",
    "PORTABLE_FILENAME_CHARACTERS",
    "RESERVED_ENV_NAMES",
    "absolute_paths",
    "annotations",
    "c_strings",
    "capabilities",
    "capability_sets",
    "dns_labels",
    "domainnames",
    "env_names",
    "env_vars",
    "hostnames",
    "namespace_sets",
    "path_subsets",
    "process_args",
    "processes",
    "rlimit_bounds",
    "rlimits",
    "specs",
    "users",
]
