"""Kubernetes protobuf at the HTTP edge: request bodies decoded into the JSON form the REST layer
takes, and responses (objects, lists, errors, watch frames) encoded for clients that ask."""

from __future__ import annotations

from typing import Any

from kaito.cluster._errors import StatusError, bad_request, unsupported_media_type
from kaito.cluster._json import Obj, loads
from kaito.cluster._protobuf import (
    PROTOBUF,
    PROTOBUF_WATCH,
    ProtobufError,
    decode_object,
    encode_object,
    encode_watch_event,
    supports,
)
from kaito.cluster._resource_types import ResourceType

__all__ = (
    "PROTOBUF",
    "PROTOBUF_WATCH",
    "decode_protobuf_body",
    "encode_protobuf",
    "is_protobuf",
    "watch_frame",
)

_JSON_TYPES = ("application/json", "application/yaml", "application/apply-patch+yaml")


def is_protobuf(content_type: str) -> bool:
    """Whether a ``Content-Type`` is Kubernetes protobuf."""
    return content_type.split(";", maxsplit=1)[0].strip().lower() == PROTOBUF


def decode_protobuf_body(
    body: bytes, rt: ResourceType, *, patch: bool = False, subresource: str = ""
) -> Obj:
    """Decode a protobuf request body for ``rt`` into its JSON form.

    Raises:
        StatusError: 415 for patches and custom resources (kube-apiserver speaks protobuf only
            for built-in kinds and never for patches), 400 for bodies that do not decode.
    """
    if patch or (rt.custom and subresource != "scale"):
        raise unsupported_media_type(PROTOBUF, _JSON_TYPES)
    try:
        return decode_object(body, api_version=rt.api_version, kind=rt.kind)
    except ProtobufError as error:
        raise bad_request(str(error)) from None


def encode_protobuf(document: bytes | Obj) -> bytes | None:
    """The protobuf form of a JSON response document, ``None`` when its kind has none."""
    obj: Any = loads(document) if isinstance(document, bytes) else document
    if not isinstance(obj, dict) or not supports(obj.get("apiVersion", ""), obj.get("kind", "")):
        return None
    try:
        return encode_object(obj)
    except ProtobufError as error:
        raise StatusError(
            500, "InternalError", f"Internal error occurred: encoding the response: {error}"
        ) from None


def watch_frame(event_type: str, obj: Obj) -> bytes:
    """One length-prefixed protobuf watch frame."""
    try:
        return encode_watch_event(event_type, obj)
    except ProtobufError as error:
        raise StatusError(
            500, "InternalError", f"Internal error occurred: encoding a watch event: {error}"
        ) from None
