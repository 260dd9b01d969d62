"""Kubernetes protobuf envelopes: the ``k8s\\0`` magic and ``runtime.Unknown`` around objects, and
the length-prefixed ``WatchEvent`` frames of protobuf watch streams."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from kaito.cluster._protobuf._codec import decode_message, encode_message
from kaito.cluster._protobuf._tables import KINDS
from kaito.cluster._protobuf._wire import BYTES, ProtobufError, fields, tag, varint

__all__ = (
    "PREFIX",
    "PROTOBUF",
    "PROTOBUF_WATCH",
    "decode_object",
    "decode_watch_frames",
    "encode_object",
    "encode_watch_event",
    "supports",
)

PREFIX = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_WATCH = "application/vnd.kubernetes.protobuf;stream=watch"
_MAX_FRAME = 16 * 1024 * 1024
# Kinds registered in every group version of kube-apiserver's scheme.
_ANY_VERSION = frozenset({"DeleteOptions", "Status", "WatchEvent"})


def _message(api_version: str, kind: str) -> str | None:
    message = KINDS.get((api_version, kind))
    if message is None and kind in _ANY_VERSION and api_version:
        message = KINDS.get(("v1", kind))
    return message


def supports(api_version: str, kind: str) -> bool:
    """Whether ``api_version``/``kind`` has a protobuf encoding (built-in kinds do; custom
    resources never do)."""
    return _message(api_version, kind) is not None


def _length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, BYTES) + varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _length_delimited(number, text.encode())


def _unknown(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _string(1, api_version) + _string(2, kind)
    return (
        _length_delimited(1, type_meta)
        + _length_delimited(2, raw)
        + _string(3, "")
        + _string(4, "")
    )


def encode_object(obj: dict[str, Any]) -> bytes:
    """``k8s\\0`` + ``runtime.Unknown`` holding ``obj`` (its ``apiVersion`` and ``kind`` name the
    message).

    Raises:
        ProtobufError: the kind has no protobuf encoding, or a field has the wrong JSON type.
    """
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    message = _message(api_version, kind)
    if message is None:
        raise ProtobufError(f"{kind} ({api_version}) has no protobuf encoding")
    return PREFIX + _unknown(api_version, kind, encode_message(message, obj))


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("proto: wrong wireType = 0 for a string field")
    return value.decode("utf-8", errors="replace")


def _split_unknown(data: bytes) -> tuple[str, str, bytes, str]:
    api_version = kind = encoding = ""
    raw = b""
    for number, _, value in fields(data):
        if number == 1:
            if not isinstance(value, bytes):
                raise ProtobufError("proto: wrong wireType = 0 for field TypeMeta")
            for inner, _, text in fields(value):
                if inner == 1:
                    api_version = _text(text)
                elif inner == 2:
                    kind = _text(text)
        elif number == 2:
            if not isinstance(value, bytes):
                raise ProtobufError("proto: wrong wireType = 0 for field Raw")
            raw = value
        elif number == 3:
            encoding = _text(value)
    return api_version, kind, raw, encoding


def decode_object(body: bytes, *, api_version: str = "", kind: str = "") -> dict[str, Any]:
    """Decode a request body (``k8s\\0`` + ``runtime.Unknown``) into the object's JSON form.

    ``api_version``/``kind`` are the endpoint's defaults for an envelope that leaves them empty,
    as kube-apiserver defaults them. Unknown fields are dropped.

    Raises:
        ProtobufError: no magic, a malformed message, or a kind without a protobuf encoding.
    """
    if not body.startswith(PREFIX):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    if len(body) == len(PREFIX):
        raise ProtobufError("empty body")
    sent_version, sent_kind, raw, encoding = _split_unknown(body[len(PREFIX) :])
    if encoding:
        raise ProtobufError(f"unsupported content encoding {encoding!r}")
    sent_kind = sent_kind or kind
    sent_version = sent_version or api_version
    message = _message(sent_version, sent_kind)
    if message is None:
        raise ProtobufError(
            f'no kind "{sent_kind}" is registered for version "{sent_version}" in scheme '
            '"kaito.cluster"'
        )
    decoded = decode_message(message, raw)
    return {"kind": sent_kind, "apiVersion": sent_version, **decoded}


def encode_watch_event(event_type: str, obj: dict[str, Any]) -> bytes:
    """One frame of a protobuf watch stream: a 4-byte big-endian length, then a ``WatchEvent``
    (no magic) whose ``object.raw`` is the enveloped object."""
    event = _string(1, event_type) + _length_delimited(2, _length_delimited(1, encode_object(obj)))
    return struct.pack(">I", len(event)) + event


def decode_watch_frames(data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """Split a protobuf watch stream into (type, object) events (a client's view, for tests)."""
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ProtobufError("unexpected EOF")
        (size,) = struct.unpack_from(">I", data, pos)
        if size > _MAX_FRAME or pos + 4 + size > len(data):
            raise ProtobufError("unexpected EOF")
        frame = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
        event_type = ""
        obj: dict[str, Any] = {}
        for number, _, value in fields(frame):
            if number == 1:
                event_type = _text(value)
            elif number == 2 and isinstance(value, bytes):
                for inner, _, raw in fields(value):
                    if inner == 1 and isinstance(raw, bytes):
                        obj = decode_object(raw)
        yield event_type, obj
