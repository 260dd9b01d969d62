"""The protobuf wire format: varints, tags and length-delimited fields (proto2, as Go writes it)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

__all__ = (
    "BYTES",
    "FIXED32",
    "FIXED64",
    "VARINT",
    "ProtobufError",
    "fields",
    "read_varint",
    "tag",
    "varint",
)

VARINT = 0
FIXED64 = 1
BYTES = 2
FIXED32 = 5
_MASK64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """A body that is not valid protobuf for the expected message (the API server answers 400)."""


def varint(value: int) -> bytes:
    """Encode an integer as a varint; negative numbers take ten bytes (two's complement)."""
    value &= _MASK64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """The key of a field."""
    return varint((number << 3) | wire_type)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; returns (unsigned value, next position)."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtobufError("unexpected EOF")
        byte = data[pos]
        pos += 1
        if shift >= 64:
            raise ProtobufError("proto: integer overflow")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
        shift += 7


def fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Iterate the fields of one message: (number, wire type, value).

    Varints come back as unsigned 64-bit integers, fixed-width values as their unsigned integer,
    length-delimited values as bytes.

    Raises:
        ProtobufError: truncated input, a zero field number or an unknown wire type.
    """
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number <= 0:
            raise ProtobufError(f"proto: illegal tag {number} (wire type {wire_type})")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == BYTES:
            length, pos = read_varint(data, pos)
            if length > end - pos:
                raise ProtobufError("unexpected EOF")
            value = bytes(data[pos : pos + length])
            pos += length
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise ProtobufError("unexpected EOF")
            (value,) = struct.unpack_from("<Q", data, pos)
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise ProtobufError("unexpected EOF")
            (value,) = struct.unpack_from("<I", data, pos)
            pos += 4
        else:
            raise ProtobufError(f"proto: illegal wireType {wire_type}")
        yield number, wire_type, value
