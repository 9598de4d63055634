"""Validation against the official runtime-spec JSON schemas, offline.

The schemas are data kept outside the repository (`../shared/oci-runtime-spec/schema`, or wherever
BULKHEAD_SPEC_SCHEMA_DIR points). They carry no `id`, and `config-schema.json` refers to its
siblings by bare file name (`"$ref": "defs.json#/definitions/Mount"`), so every file is registered
under its file name: a `$ref` then resolves against the directory and never reaches the network.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from referencing import Registry

SCHEMA_DIR_ENV = "BULKHEAD_SPEC_SCHEMA_DIR"
# Where the schemas sit relative to the directory that holds the repository checkout.
_SHARED_SCHEMA_DIR = Path("shared", "oci-runtime-spec", "schema")


class SchemaNotFoundError(FileNotFoundError):
    """The runtime-spec schema directory, or a schema in it, is missing."""


def find_schema_dir() -> Path | None:
    """The runtime-spec schema directory, or None if it cannot be found.

    BULKHEAD_SPEC_SCHEMA_DIR wins when set (returned even if wrong, so that `validator()` names
    the bad directory instead of a test silently skipping). Otherwise the parents of this package
    and of the working directory are searched for `shared/oci-runtime-spec/schema`.
    """
    configured = os.environ.get(SCHEMA_DIR_ENV)
    if configured:
        return Path(configured)
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for parent in (start, *start.parents):
            candidate = parent / _SHARED_SCHEMA_DIR
            if (candidate / "config-schema.json").is_file():
                return candidate
    return None


def validator(schema_name: str, schema_dir: Path | None = None) -> Validator:
    """A (cached) jsonschema validator for e.g. "config-schema.json" or "state-schema.json".

    The validator class follows the schema's `$schema` (draft-04 for runtime-spec v1.3.0).
    Raises SchemaNotFoundError naming the directory when the schema is not there.
    """
    directory = schema_dir if schema_dir is not None else find_schema_dir()
    if directory is None:
        raise SchemaNotFoundError(
            f"runtime-spec schemas not found: set {SCHEMA_DIR_ENV} to the schema/ directory "
            f"of opencontainers/runtime-spec, or check it out as ../{_SHARED_SCHEMA_DIR} "
            "next to this repository"
        )
    return _validator(schema_name, directory.resolve())


@functools.cache
def _validator(schema_name: str, directory: Path) -> Validator:
    # Imported here: jsonschema is only needed by whoever validates, and costs import time.
    from jsonschema.validators import Draft4Validator, validator_for

    if not directory.is_dir():
        raise SchemaNotFoundError(f"runtime-spec schema directory {directory} does not exist")
    path = directory / schema_name
    if not path.is_file():
        raise SchemaNotFoundError(f"no schema {schema_name!r} in {directory}")
    schema = _load(path)
    cls = validator_for(schema, default=Draft4Validator)
    # defs*.json declare no `$schema`: they are read in the dialect of the schema using them.
    return cls(schema, registry=_registry(directory, cls.META_SCHEMA["$schema"]))


@functools.cache
def _registry(directory: Path, dialect_id: str) -> Registry[Any]:
    from referencing import Registry, Resource
    from referencing.jsonschema import specification_with

    dialect = specification_with(dialect_id)
    resources = [
        (path.name, Resource.from_contents(_load(path), default_specification=dialect))
        for path in sorted(directory.glob("*.json"))
    ]
    return Registry().with_resources(resources)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"schema {path} is not valid JSON: {exc}") from exc
