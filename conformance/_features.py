"""Helpers of the features tests: the runtime's features document, configs run from raw JSON,
and checks that try every declared value at once, then each alone, to name every offender."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bulkhead.containers import ContainerFactory, Result
from bulkhead.runtime import RuntimeCallError, RuntimeClient


@functools.cache
def _raw_features(runtime: RuntimeClient) -> str | None:
    try:
        return runtime.call("features").stdout
    except RuntimeCallError:
        return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    # config.md "Annotations": keys MUST be unique; a JSON object with a repeated name is
    # not a map (RFC 8259 §4 leaves its meaning open).
    assert not dupes, f"the features document repeats the keys {dupes}"
    return dict(pairs)


def features(runtime: RuntimeClient) -> dict[str, Any]:
    """The runtime's features document; skips when it has no ``features`` verb."""
    text = _raw_features(runtime)
    if text is None:
        pytest.skip(f"{runtime.name} has no `features` verb (features.md makes it optional)")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise AssertionError(f"`{runtime.name} features` printed no JSON: {exc}: {text!r}") from exc
    assert isinstance(data, dict), f"the features document is not a JSON object: {text!r}"
    return data


def declared(doc: dict[str, Any], path: str) -> list[str]:
    """The list at ``path`` (dotted); skips when the runtime does not declare one."""
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == []:
        pytest.skip(f"the features document declares no {path}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"features {path} is not an array of strings: {value!r}"
    )
    return list(dict.fromkeys(value))


def run_config(
    containers: ContainerFactory,
    args: Sequence[str],
    change: Callable[[dict[str, Any], Path], None],
    made: Callable[[Path], None] | None = None,
) -> Result:
    """Runs ``args`` from a config.json dict that ``change(config, bundle_path)`` edits (raw,
    so values outside the typed models can be written). An empty directory
    ``<bundle>/bind-source`` exists before create, for bind mounts; ``made`` may fill it."""
    cid = containers.new_id()
    spec = containers.spec(args)
    assert spec.linux is not None
    spec.linux.cgroups_path = f"/{cid}"
    config = spec.to_json_dict()
    path = containers.base_dir / cid
    change(config, path)
    with containers.bundle(config, cid=cid) as (_, bundle):
        assert bundle.path == path, (bundle.path, path)
        source = bundle.path / "bind-source"
        source.mkdir()
        if made is not None:
            made(source)
        return Result.of(containers.client.run(cid, bundle.path))


def why_failed(result: Result) -> str:
    return f"exit {result.exit_code}: {(result.stderr.strip() or result.stdout.strip())[-300:]}"


def offenders(
    values: Sequence[str], attempt: Callable[[Sequence[str]], str | None]
) -> dict[str, str]:
    """``attempt(values)`` says why a config using those values failed (None: it worked). All
    at once first; on failure each alone, so every offending value is named."""
    if not values or (together := attempt(values)) is None:
        return {}
    found = {}
    for value in values:
        why = attempt([value])
        if why is not None:
            found[value] = why
    return found or {"(only all together)": together}


def assert_none(found: dict[str, str], what: str) -> None:
    assert not found, f"{what}:\n" + "\n".join(f"  {k}: {v}" for k, v in found.items())
