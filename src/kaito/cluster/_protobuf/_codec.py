"""The table-driven protobuf codec: Kubernetes messages to and from the JSON form.

Decoding gives exactly the JSON a Go server would write after unmarshalling the message into its
Go struct (``json.Marshal`` of the result): absent non-pointer scalars are their zero value and
dropped when ``omitempty``, structs are always present (a zero ``Time`` is ``null``), unknown
fields are dropped. Encoding does the reverse of ``json.Unmarshal`` then the generated
``Marshal``: non-pointer scalars and structs are always written, pointers, slices and maps only
when set, map keys sorted, fields in number order. So a request decoded here is the same dict as
the same object sent as JSON, and kubectl's own bytes re-encode identically.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import struct
from functools import cache
from typing import Any

import attrs

from kaito.cluster._json import JSONDecodeError, dumps, loads
from kaito.cluster._protobuf._tables import MESSAGES
from kaito.cluster._protobuf._wire import (
    BYTES,
    FIXED32,
    FIXED64,
    VARINT,
    ProtobufError,
    fields,
    read_varint,
    tag,
    varint,
)

__all__ = ("decode_message", "encode_message", "message_for", "message_names")

_SCALAR_WIRE = {
    "string": BYTES,
    "bytes": BYTES,
    "int32": VARINT,
    "int64": VARINT,
    "uint32": VARINT,
    "uint64": VARINT,
    "bool": VARINT,
    "double": FIXED64,
    "float": FIXED32,
}
_ZERO: dict[str, Any] = {
    "string": "",
    "int32": 0,
    "int64": 0,
    "uint32": 0,
    "uint64": 0,
    "bool": False,
    "double": 0.0,
    "float": 0.0,
}
_INT_RANGE = {
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class TypeSpec:
    """A field's value type: ``scalar``, ``message``, ``map`` (key/value) or ``wrapper``
    (a named slice: a message of repeated ``items``)."""

    kind: str
    name: str = ""
    key: TypeSpec | None = None
    value: TypeSpec | None = None


@attrs.frozen
class FieldSpec:
    """One field of a message."""

    number: int
    json: str
    type: TypeSpec
    repeated: bool
    pointer: bool
    omitempty: bool
    inline: bool

    @property
    def wire_type(self) -> int:
        """The wire type of one value (length-delimited for everything but scalars)."""
        if self.type.kind == "scalar":
            return _SCALAR_WIRE[self.type.name]
        return BYTES


@attrs.frozen
class MessageSpec:
    """A message: its fields in declaration order, by number, and in number order."""

    name: str
    fields: tuple[FieldSpec, ...]
    by_number: dict[int, FieldSpec]
    wire_order: tuple[FieldSpec, ...]


def _parse_type(text: str) -> TypeSpec:
    if text.startswith("map["):
        key, value = text[4:].split("]", 1)
        return TypeSpec("map", key=_parse_type(key), value=_parse_type(value))
    if text.startswith("{[]") and text.endswith("}"):
        return TypeSpec("wrapper", value=_parse_type(text[3:-1]))
    if text in _SCALAR_WIRE:
        return TypeSpec("scalar", text)
    return TypeSpec("message", text)


@cache
def message_for(name: str) -> MessageSpec:
    """The compiled spec of a message named in the table (``core/v1.Pod``)."""
    specs = []
    for number, json_name, type_text, flags in MESSAGES[name]:
        repeated = type_text.startswith("[]")
        specs.append(
            FieldSpec(
                number=number,
                json=json_name,
                type=_parse_type(type_text[2:] if repeated else type_text),
                repeated=repeated,
                pointer="P" in flags,
                omitempty="O" in flags,
                inline="I" in flags,
            )
        )
    return MessageSpec(
        name,
        tuple(specs),
        {f.number: f for f in specs},
        tuple(sorted(specs, key=lambda f: f.number)),
    )


def message_names() -> tuple[str, ...]:
    """Every message of the table."""
    return tuple(MESSAGES)


# ---------------------------------------------------------------------------------- scalars


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar_from_wire(name: str, wire_type: int, value: int | bytes) -> Any:
    if name == "string":
        assert isinstance(value, bytes)
        return value.decode("utf-8", errors="replace")
    if name == "bytes":
        assert isinstance(value, bytes)
        return base64.b64encode(value).decode("ascii")
    assert isinstance(value, int)
    if name == "bool":
        return value != 0
    if name == "int64":
        return _signed64(value)
    if name == "int32":
        return ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    if name == "uint32":
        return value & 0xFFFFFFFF
    if name == "uint64":
        return value
    if name == "double":
        return struct.unpack("<d", struct.pack("<Q", value))[0]
    return struct.unpack("<f", struct.pack("<I", value))[0]


def _scalar_to_wire(name: str, value: Any, path: str) -> bytes:
    if name == "string":
        if not isinstance(value, str):
            raise ProtobufError(f"{path}: expected a string, got {_json_type(value)}")
        raw = value.encode("utf-8", errors="surrogatepass")
        return varint(len(raw)) + raw
    if name == "bytes":
        if not isinstance(value, str):
            raise ProtobufError(f"{path}: expected base64 data, got {_json_type(value)}")
        try:
            raw = base64.b64decode(value)
        except ValueError:
            raise ProtobufError(f"{path}: illegal base64 data") from None
        return varint(len(raw)) + raw
    if name == "bool":
        if not isinstance(value, bool):
            raise ProtobufError(f"{path}: expected a boolean, got {_json_type(value)}")
        return b"\x01" if value else b"\x00"
    if name in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtobufError(f"{path}: expected a number, got {_json_type(value)}")
        return struct.pack("<d" if name == "double" else "<f", float(value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtobufError(f"{path}: expected an integer, got {_json_type(value)}")
    low, high = _INT_RANGE[name]
    if not low <= value <= high:
        raise ProtobufError(f"{path}: {value} overflows {name}")
    return varint(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_zero(value: Any) -> bool:
    return value is None or (value in ("", 0, False) and not isinstance(value, list | dict))


# ---------------------------------------------------------------------------------- special types


def _format_time(seconds: int, micros: int | None) -> str:
    try:
        moment = _EPOCH + dt.timedelta(seconds=seconds, microseconds=micros or 0)
    except OverflowError:
        raise ProtobufError(f"proto: timestamp seconds {seconds} out of range") from None
    if micros is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any, path: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ProtobufError(f"{path}: expected an RFC 3339 time, got {_json_type(value)}")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ProtobufError(f"{path}: {value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ProtobufError(f"{path}: {value!r} is not an RFC 3339 time (no time zone)")
    return moment


def _timestamp(data: bytes) -> tuple[int, int]:
    seconds = nanos = 0
    for number, wire_type, value in fields(data):
        if wire_type != VARINT or not isinstance(value, int):
            continue
        if number == 1:
            seconds = _signed64(value)
        elif number == 2:
            nanos = ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    return seconds, nanos


def _encode_timestamp(seconds: int, nanos: int) -> bytes:
    return tag(1, VARINT) + varint(seconds) + tag(2, VARINT) + varint(nanos)


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string (``1h30m``, ``300ms``, ``-1.5s``)."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    pos = 0
    total = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {text!r}")
        whole, _, fraction = match.group(1).partition(".")
        unit = _DURATION_UNITS[match.group(2)]
        total += int(whole or 0) * unit
        if fraction:
            total += int(fraction) * unit // 10 ** len(fraction)
        pos = match.end()
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


def format_go_duration(nanos: int) -> str:
    """Go's ``time.Duration.String``: ``1h30m0s``, ``1.5s``, ``300ms``, ``0s``."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    n = abs(nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _fraction(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}"


def _single_field(data: bytes, number: int) -> int | bytes | None:
    found: int | bytes | None = None
    for field_number, _, value in fields(data):
        if field_number == number:
            found = value
    return found


def _raw_json(data: bytes, what: str) -> Any:
    raw = _single_field(data, 1)
    if raw is None or raw == b"":
        return None
    if not isinstance(raw, bytes):
        raise ProtobufError(f"proto: wrong wireType = 0 for field {what}")
    try:
        return loads(raw)
    except JSONDecodeError as error:
        raise ProtobufError(f"{what}: the embedded object is not JSON: {error}") from None


def _decode_special(name: str, data: bytes) -> tuple[bool, Any]:
    """(handled, JSON value) for the hand-written types."""
    if name == "meta/v1.Time":
        if not data:
            return True, None
        seconds, _ = _timestamp(data)
        return True, _format_time(seconds, None)
    if name == "meta/v1.MicroTime":
        if not data:
            return True, None
        seconds, nanos = _timestamp(data)
        return True, _format_time(seconds, max(nanos, 0) // 1000)
    if name == "meta/v1.Duration":
        value = _single_field(data, 1)
        return True, format_go_duration(_signed64(value) if isinstance(value, int) else 0)
    if name == "resource.Quantity":
        value = _single_field(data, 1)
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else ""
        return True, text or "0"
    if name == "intstr.IntOrString":
        kind = int_value = 0
        str_value = ""
        for number, _, value in fields(data):
            if number == 1 and isinstance(value, int):
                kind = _signed64(value)
            elif number == 2 and isinstance(value, int):
                int_value = ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
            elif number == 3 and isinstance(value, bytes):
                str_value = value.decode("utf-8", errors="replace")
        return True, str_value if kind == 1 else int_value
    if name == "runtime.RawExtension":
        return True, _raw_json(data, "raw")
    if name == "meta/v1.FieldsV1":
        return True, _raw_json(data, "Raw")
    return False, None


def _encode_special(name: str, value: Any, path: str) -> bytes | None:
    if name in ("meta/v1.Time", "meta/v1.MicroTime"):
        if value is None:
            return b""
        moment = _parse_time(value, path)
        delta = moment - _EPOCH
        seconds = delta.days * 86400 + delta.seconds
        nanos = delta.microseconds * 1000 if name == "meta/v1.MicroTime" else 0
        return _encode_timestamp(seconds, nanos)
    if name == "meta/v1.Duration":
        if value is None:
            nanos = 0
        elif isinstance(value, str):
            try:
                nanos = parse_go_duration(value)
            except ValueError as error:
                raise ProtobufError(f"{path}: {error}") from None
        else:
            raise ProtobufError(f"{path}: expected a duration string, got {_json_type(value)}")
        return tag(1, VARINT) + varint(nanos)
    if name == "resource.Quantity":
        if value is None:
            value = "0"
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ProtobufError(f"{path}: expected a quantity, got {_json_type(value)}")
        text = value if isinstance(value, str) else str(value)
        raw = text.encode()
        return tag(1, BYTES) + varint(len(raw)) + raw
    if name == "intstr.IntOrString":
        if isinstance(value, str):
            raw = value.encode("utf-8", errors="surrogatepass")
            return (
                tag(1, VARINT)
                + b"\x01"
                + tag(2, VARINT)
                + b"\x00"
                + tag(3, BYTES)
                + (varint(len(raw)) + raw)
            )
        if value is None:
            value = 0
        return (
            tag(1, VARINT)
            + b"\x00"
            + tag(2, VARINT)
            + _scalar_to_wire("int32", value, path)
            + tag(3, BYTES)
            + b"\x00"
        )
    if name in ("runtime.RawExtension", "meta/v1.FieldsV1"):
        if value is None:
            return b""
        raw = dumps(value)
        return tag(1, BYTES) + varint(len(raw)) + raw
    return None


# ---------------------------------------------------------------------------------- decode


def decode_message(name: str, data: bytes) -> Any:
    """Decode message ``name`` into its JSON form (a dict, or a plain value for the special
    types such as ``meta/v1.Time``).

    Raises:
        ProtobufError: malformed input, or a field sent with the wrong wire type.
    """
    handled, special = _decode_special(name, data)
    if handled:
        return special
    spec = message_for(name)
    singles: dict[int, Any] = {}
    multiples: dict[int, list[Any]] = {}
    for number, wire_type, value in fields(data):
        field = spec.by_number.get(number)
        if field is None:
            continue  # unknown fields are dropped, as Go's generated Unmarshal does
        expected = field.wire_type
        if field.repeated and field.type.kind == "scalar":
            items = multiples.setdefault(number, [])
            if wire_type == expected:
                items.append(_scalar_from_wire(field.type.name, wire_type, value))
            elif wire_type == BYTES and expected != BYTES:
                assert isinstance(value, bytes)
                items.extend(_unpack(field.type.name, expected, value))
            else:
                raise ProtobufError(f"proto: wrong wireType = {wire_type} for field {field.json}")
            continue
        if wire_type != expected:
            raise ProtobufError(f"proto: wrong wireType = {wire_type} for field {field.json}")
        if field.repeated or field.type.kind == "map":
            multiples.setdefault(number, []).append(value)
        elif field.type.kind == "scalar":
            singles[number] = _scalar_from_wire(field.type.name, wire_type, value)
        else:
            assert isinstance(value, bytes)
            singles[number] = singles.get(number, b"") + value  # repeated occurrences merge
    out: dict[str, Any] = {}
    for field in spec.fields:
        number = field.number
        if field.inline:
            inner = decode_message(field.type.name, singles.get(number, b""))
            if isinstance(inner, dict):
                out.update(inner)
            continue
        present = number in singles or number in multiples
        if field.repeated:
            if number not in multiples:
                if not field.omitempty:
                    out[field.json] = None
                continue
            if field.type.kind == "scalar":
                out[field.json] = multiples[number]
            else:
                out[field.json] = [_decode_value(field.type, raw) for raw in multiples[number]]
            continue
        if field.type.kind == "map":
            if number not in multiples:
                if not field.omitempty:
                    out[field.json] = None
                continue
            out[field.json] = _decode_map(field.type, multiples[number])
            continue
        if field.type.kind == "wrapper":
            if not present:
                if not field.omitempty:
                    out[field.json] = None
                continue
            out[field.json] = _decode_value(field.type, singles[number])
            continue
        if field.type.kind == "message":
            if field.pointer and not present:
                if not field.omitempty:
                    out[field.json] = None
                continue
            out[field.json] = decode_message(field.type.name, singles.get(number, b""))
            continue
        if not present:
            if field.pointer or field.type.name == "bytes":
                if not field.omitempty:
                    out[field.json] = None
                continue
            value = _ZERO[field.type.name]
        else:
            value = singles[number]
        if field.omitempty and not field.pointer and _is_zero(value):
            continue
        out[field.json] = value
    return out


def _unpack(name: str, wire_type: int, data: bytes) -> list[Any]:
    items = []
    pos = 0
    while pos < len(data):
        if wire_type == VARINT:
            raw, pos = read_varint(data, pos)
            items.append(_scalar_from_wire(name, VARINT, raw))
        else:
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > len(data):
                raise ProtobufError("unexpected EOF")
            fmt = "<Q" if size == 8 else "<I"
            items.append(_scalar_from_wire(name, wire_type, struct.unpack_from(fmt, data, pos)[0]))
            pos += size
    return items


def _decode_value(spec: TypeSpec, raw: Any) -> Any:
    if spec.kind == "message":
        return decode_message(spec.name, raw)
    if spec.kind == "wrapper":
        assert spec.value is not None
        items = []
        for number, wire_type, value in fields(raw):
            if number == 1:
                items.append(_decode_value_wire(spec.value, wire_type, value))
        return items
    raise ProtobufError(f"unexpected value type {spec.kind}")


def _decode_value_wire(spec: TypeSpec, wire_type: int, value: int | bytes) -> Any:
    if spec.kind == "scalar":
        if wire_type != _SCALAR_WIRE[spec.name]:
            raise ProtobufError(f"proto: wrong wireType = {wire_type} for a {spec.name}")
        return _scalar_from_wire(spec.name, wire_type, value)
    if wire_type != BYTES:
        raise ProtobufError(f"proto: wrong wireType = {wire_type} for a message")
    return _decode_value(spec, value)


def _decode_map(spec: TypeSpec, entries: list[bytes]) -> dict[str, Any]:
    assert spec.key is not None
    assert spec.value is not None
    out: dict[str, Any] = {}
    for entry in entries:
        key: Any = _ZERO.get(spec.key.name, "")
        value: Any = None
        for number, wire_type, raw in fields(entry):
            if number == 1:
                key = _decode_value_wire(spec.key, wire_type, raw)
            elif number == 2:
                value = _decode_value_wire(spec.value, wire_type, raw)
        if value is None:
            value = _zero_of(spec.value)
        out[str(key)] = value
    return out


def _zero_of(spec: TypeSpec) -> Any:
    if spec.kind == "scalar":
        return "" if spec.name == "bytes" else _ZERO[spec.name]
    if spec.kind == "message":
        return decode_message(spec.name, b"")
    return None


# ---------------------------------------------------------------------------------- encode


def encode_message(name: str, value: Any, path: str = "") -> bytes:
    """Encode the JSON form of message ``name`` as Go would (see the module docstring).

    Raises:
        ProtobufError: a value of the wrong JSON type for its field (named by its path).
    """
    special = _encode_special(name, value, path)
    if special is not None:
        return special
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ProtobufError(f"{path or name}: expected an object, got {_json_type(value)}")
    spec = message_for(name)
    out = bytearray()
    for field in spec.wire_order:
        number = field.number
        if field.inline:
            inner = encode_message(field.type.name, value, path)
            out += tag(number, BYTES) + varint(len(inner)) + inner
            continue
        item = value.get(field.json)
        where = f"{path}.{field.json}" if path else field.json
        if field.repeated:
            if item is None:
                continue
            if not isinstance(item, list):
                raise ProtobufError(f"{where}: expected an array, got {_json_type(item)}")
            for index, element in enumerate(item):
                out += _encode_value(number, field.type, element, f"{where}[{index}]")
            continue
        if field.type.kind == "map":
            if not item:
                continue
            if not isinstance(item, dict):
                raise ProtobufError(f"{where}: expected an object, got {_json_type(item)}")
            assert field.type.key is not None
            assert field.type.value is not None
            for key in sorted(item):
                entry = _encode_value(1, field.type.key, key, where)
                element = item[key]
                if not (field.type.value.name == "bytes" and element is None):
                    entry += _encode_value(2, field.type.value, element, f"{where}[{key}]")
                out += tag(number, BYTES) + varint(len(entry)) + entry
            continue
        if item is None and (
            field.pointer
            or field.type.kind == "wrapper"
            or (field.type.kind == "scalar" and field.type.name == "bytes")
        ):
            continue
        if field.type.kind == "scalar" and item is None:
            item = _ZERO[field.type.name]
        out += _encode_value(number, field.type, item, where)
    return bytes(out)


def _encode_value(number: int, spec: TypeSpec, value: Any, path: str) -> bytes:
    if spec.kind == "scalar":
        if value is None:
            value = "" if spec.name == "bytes" else _ZERO[spec.name]
        return tag(number, _SCALAR_WIRE[spec.name]) + _scalar_to_wire(spec.name, value, path)
    if spec.kind == "wrapper":
        assert spec.value is not None
        if not isinstance(value, list):
            raise ProtobufError(f"{path}: expected an array, got {_json_type(value)}")
        inner = b"".join(
            _encode_value(1, spec.value, element, f"{path}[{index}]")
            for index, element in enumerate(value)
        )
    else:
        inner = encode_message(spec.name, value, path)
    return tag(number, BYTES) + varint(len(inner)) + inner
