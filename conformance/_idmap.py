"""Which runtimes conformance/test_mounts_idmap.py judges: what a runtime declares of idmapped
mounts (features.md mountExtensions.idmap) and, where it declares nothing, what one idmapped bind
showed (the reasoning is in that module's docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from bulkhead.runtime import RuntimeCallError, RuntimeClient
from conformance._support import _version_key

ON_DISK = 1000  # the owner of the source's files on the host
MAPPED = 2345  # what a mount mapping turns it into
# runtime-spec 1.1.0 added mounts[].uidMappings/gidMappings (ChangeLog: "IDMapping field for
# mount point", #1143); 1.2.0 the idmap and ridmap options (#1222).
MAPPINGS_SINCE = "1.1.0"


def declared_idmap(runtime: RuntimeClient) -> tuple[bool | None, str | None]:
    """(features.md mountExtensions.idmap.enabled, ociVersionMax): (None, None) without a
    ``features`` verb, None for enabled when the document does not say."""
    try:
        features = runtime.features()
    except (RuntimeCallError, ValueError):
        return None, None
    linux = features.get("linux")
    extensions = linux.get("mountExtensions") if isinstance(linux, dict) else None
    idmap = extensions.get("idmap") if isinstance(extensions, dict) else None
    enabled = idmap.get("enabled") if isinstance(idmap, dict) else None
    spec_max = features.get("ociVersionMax")
    return (
        enabled if isinstance(enabled, bool) else None,
        spec_max if isinstance(spec_max, str) else None,
    )


@dataclass(frozen=True)
class Probe:
    """What one idmapped bind (``ON_DISK`` mapped to ``MAPPED``) showed in a container."""

    refused: str | None  # the runtime's error, when create failed
    owner: str  # ``uid:gid`` of the file as the container saw it
    state_version: str | None  # ociVersion of the state the runtime wrote


def judge(enabled: bool | None, spec_max: str | None, probe: Probe | None) -> str | None:
    """Why the idmap tests do not apply to this runtime (the skip reason), or None: they run.
    ``probe`` is needed unless ``enabled`` is declared (test_mounts_idmap.py says why)."""
    if enabled is True:
        return None
    if enabled is False:
        return "its features declare mountExtensions.idmap.enabled false"
    assert probe is not None
    if probe.refused is not None:
        return f"it refuses idmapped bind mounts ({probe.refused}): it does not implement them"
    if probe.owner != f"{ON_DISK}:{ON_DISK}":
        return None  # mapped as asked, or wrong in a way the tests report
    version = spec_max or probe.state_version
    source = "ociVersionMax in its features" if spec_max else "ociVersion in its state"
    if version is not None and _version_key(version) < _version_key(MAPPINGS_SINCE):
        return (
            f"it ignored a mount's uidMappings/gidMappings and declares runtime-spec {version} "
            f"({source}): they arrived in {MAPPINGS_SINCE}, and a runtime MUST ignore "
            "properties it does not know (config.md Extensibility)"
        )
    return None  # a runtime of a spec that has them ignored them: the tests say so
