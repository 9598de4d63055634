"""Reading a bundle: its directory and config.json, then validation (spec/validate.py)."""

from __future__ import annotations

import os

from reference_runtime import jsonio
from reference_runtime.errors import SpecError
from reference_runtime.spec.model import Config
from reference_runtime.spec.validate import validate


def _ns_type_of(path: str) -> int | None:
    from reference_runtime.linux.namespaces import namespace_type

    return namespace_type(path)


def load_bundle(bundle: str) -> Config:
    """The validated config of the bundle at ``bundle`` (made absolute here)."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise SpecError(f"bundle {bundle}: no such directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    try:
        raw = jsonio.loads(text)
    except jsonio.JSONError as exc:
        raise SpecError(f"{path} is not valid JSON: {exc}") from None
    return validate(raw, bundle, ns_type_of=_ns_type_of, isdir=os.path.isdir,
                    is_executable=_is_executable)  # fmt: skip


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)
