"""Coverage-guided fuzz targets (atheris) for the API machinery, run as a child process.

``python -m tests.apimachinery.atheris_targets TARGET [libFuzzer flags] [CORPUS_DIR]``, where
TARGET is ``decode`` (JSON and YAML bodies), ``patch`` (the four patch formats), ``validate``
(the ``kaito validate`` pipeline: decode a stream, then ``check_workspace``) or ``all`` (the three,
picked by the first byte). Only the documented
exceptions may come out; anything else is a crash that libFuzzer reports with its input.
"""

from __future__ import annotations

import sys
from typing import Any

import atheris
import orjson

with atheris.instrument_imports(include=["kaito.apimachinery", "kaito.api"]):
    from kaito.api import check_workspace
    from kaito.apimachinery import (
        ApplyConflict,
        DecodeError,
        DecodeLimits,
        JsonPatchError,
        StrategicPatchError,
        apply_config,
        compile_schema,
        decode_json,
        decode_yaml,
        decode_yaml_stream,
        json_patch,
        merge_patch,
        nesting_depth,
        strategic_merge,
    )

LIMITS = DecodeLimits(max_bytes=64 * 1024, max_depth=64)
POD = compile_schema(
    {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "spec": {
                "type": "object",
                "properties": {
                    "containers": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge",
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {"name": {"type": "string"}},
                        },
                    },
                    "tags": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"},
                    },
                },
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }
)


def _storable(value: Any) -> None:
    """A decoded value must be storable: JSON-encodable and within the depth limit."""
    orjson.dumps(value)
    assert nesting_depth(value, LIMITS.max_depth) <= LIMITS.max_depth


def decode(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 2)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if which == 0:
            _storable(decode_json(body, LIMITS).value)
        elif which == 1:
            _storable(decode_yaml(body, LIMITS).value)
        else:
            for decoded in decode_yaml_stream(body, LIMITS):
                if not isinstance(decoded, DecodeError):
                    _storable(decoded.value)
    except DecodeError:
        return


def _json(fdp: atheris.FuzzedDataProvider) -> Any:
    try:
        return decode_json(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)), LIMITS).value
    except DecodeError:
        return {}


def patch(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = fdp.ConsumeIntInRange(0, 3)
    live = _json(fdp)
    body = _json(fdp)
    try:
        if kind == 0:
            merge_patch(live, body)
        elif kind == 1:
            json_patch(live, body, copy_limit=64 * 1024)
        elif kind == 2:
            strategic_merge(live, body, POD)
        elif isinstance(body, dict):
            apply_config(
                live if isinstance(live, dict) else None,
                body,
                POD,
                manager=fdp.ConsumeUnicodeNoSurrogates(8) or "m",
                api_version="v1",
                force=fdp.ConsumeBool(),
                now="2026-01-01T00:00:00Z",
            )
    except (JsonPatchError, StrategicPatchError, ApplyConflict):
        return


def validate(data: bytes) -> None:
    for decoded in decode_yaml_stream(data, LIMITS):
        if isinstance(decoded, DecodeError) or not isinstance(decoded.value, dict):
            continue
        doc = decoded.value
        doc.setdefault("apiVersion", "kaito.sh/v1beta1")
        doc.setdefault("kind", "Workspace")
        result = check_workspace(doc, duplicates=decoded.duplicates)
        assert result.ok == (not result.errors)
        assert (result.refused_at is None) == result.ok


def everything(data: bytes) -> None:
    """All three targets in one process (one start-up, one corpus): the first byte picks."""
    if not data:
        return
    (decode, patch, validate)[data[0] % 3](data[1:])


TARGETS = {"decode": decode, "patch": patch, "validate": validate, "all": everything}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
