"""Content negotiation: what the client accepts (JSON, YAML, Table, metadata-only, aggregated
discovery) and how request bodies are decoded (``kaito.apimachinery``'s decoder, with its size,
alias-expansion and depth limits)."""

from __future__ import annotations

from functools import lru_cache

import attrs

from kaito.apimachinery import MAX_BODY_BYTES, Decoded, DecodeError, decode_json, decode_yaml
from kaito.cluster._errors import StatusError, bad_request, not_acceptable, unsupported_media_type

__all__ = ("BODY_READ_TIMEOUT", "MAX_BODY", "Accept", "decode_body", "parse_accept")

MAX_BODY = MAX_BODY_BYTES
BODY_READ_TIMEOUT = 60.0
"""Seconds a request body may take to arrive (kube-apiserver's default request timeout)."""
_YAML_TYPES = (
    "application/yaml",
    "application/apply-patch+yaml",
    "text/yaml",
    "application/x-yaml",
)
_JSON_TYPES = (
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "*/*",
    "",
)
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_JSONISH = ("application/json", "application/yaml", "*/*", "application/*")


@attrs.frozen
class MediaType:
    """One entry of an ``Accept`` header."""

    mime: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, key: str) -> str:
        """A parameter value, ``""`` when absent."""
        return dict(self.params).get(key, "")


@attrs.frozen
class Accept:
    """What the response should be."""

    yaml: bool = False
    table: bool = False
    metadata_only: bool = False
    discovery: str = ""
    """``v2`` or ``v2beta1`` for aggregated discovery, ``""`` for the classic documents."""
    protobuf_only: bool = False
    protobuf: bool = False
    """The client prefers Kubernetes protobuf (built-in kinds); the other fields say what to send
    when the object has no protobuf form (custom resources)."""
    types: tuple[MediaType, ...] = ()


def _media_types(header: str) -> tuple[MediaType, ...]:
    result = []
    for entry in header.split(","):
        parts = [p.strip() for p in entry.split(";") if p.strip()]
        if not parts:
            continue
        params = []
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params.append((key.strip(), value.strip()))
        result.append(MediaType(parts[0].lower(), tuple(params)))
    return tuple(result)


def _unparse(media: MediaType) -> str:
    return ";".join([media.mime, *(f"{k}={v}" for k, v in media.params)])


@lru_cache(maxsize=256)
def parse_accept(header: str) -> Accept:
    """Pick the first supported representation from an ``Accept`` header."""
    types = _media_types(header or "application/json")
    if not types:
        return Accept()
    if all(t.mime == _PROTOBUF or "protobuf" in t.mime for t in types):
        plain = any(t.mime == _PROTOBUF and not t.param("as") for t in types)
        return Accept(protobuf_only=True, protobuf=plain, types=types)
    for index, media in enumerate(types):
        if media.mime == _PROTOBUF and not media.param("as"):
            rest = ",".join(_unparse(t) for t in types[index + 1 :])
            try:
                fallback = parse_accept(rest) if rest else Accept(protobuf_only=True)
            except StatusError:
                fallback = Accept(protobuf_only=True)
            return attrs.evolve(fallback, protobuf=True, types=types)
        if media.mime not in _JSONISH:
            continue
        as_ = media.param("as")
        group = media.param("g")
        if as_ == "Table" and group == "meta.k8s.io":
            return Accept(table=True, types=types)
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and group == "meta.k8s.io":
            return Accept(metadata_only=True, types=types)
        if as_ == "APIGroupDiscoveryList" and group == "apidiscovery.k8s.io":
            version = media.param("v")
            if version in ("v2", "v2beta1"):
                return Accept(discovery=version, types=types)
            continue
        if as_:
            continue
        return Accept(yaml=media.mime == "application/yaml", types=types)
    raise not_acceptable(["application/json", "application/yaml"])


def decode_body(content_type: str, body: bytes, *, patch: bool = False) -> Decoded:
    """Decode a request body by its media type (JSON or YAML; protobuf is refused).

    The value comes with the paths of keys the body gave twice (strict decoding errors).

    Raises:
        StatusError: 413 beyond 3 MiB, 415 for unsupported media types, 400 for bodies that do
            not parse, nest too deeply or expand too far through YAML aliases.
    """
    if len(body) > MAX_BODY:
        raise StatusError(
            413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}"
        )
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    if mime == _PROTOBUF or "protobuf" in mime:
        raise unsupported_media_type(mime, ["application/json", "application/yaml"])
    if mime in _YAML_TYPES:
        try:
            return decode_yaml(body)
        except DecodeError as error:
            raise bad_request(error.message) from None
    if mime in _JSON_TYPES:
        try:
            return decode_json(body)
        except DecodeError as error:
            what = "patch" if patch else "object"
            raise bad_request(
                f"couldn't get version/kind; json parse error: {error.message} (while decoding "
                f"the {what})"
            ) from None
    raise unsupported_media_type(mime, ["application/json", "application/yaml"])
