"""The one decoder for request bodies and files: JSON and YAML read as kube-apiserver reads them.

Bottom layer (pure functions). JSON follows ``sigs.k8s.io/json``: integers that fit int64 stay
integers, larger ones become floats, duplicate keys are strict-decoding errors (``duplicate field
"a.b"``), ``NaN`` is refused, invalid UTF-8 becomes U+FFFD. YAML follows ``sigs.k8s.io/yaml``
(go-yaml v2, then JSON): ``yes``/``on``/``y`` are booleans, dates and timestamps stay strings, no
base-60 numbers, ``0x``/``0o``/``0b`` and leading-zero octal integers, ``1e3`` is a number,
non-string keys become strings (``1`` -> ``"1"``, ``true`` -> ``"true"``) and a null or
compound key is an error; a float that JSON prints as an integer comes back as an integer.

Hostile input is bounded: every document may expand to at most ``max_bytes`` (aliases are
counted where they are used, so a sub-kilobyte "billion laughs" document is refused before
anything is built), may nest at most ``max_depth`` arrays and objects, and a recursive alias is
an error. Nothing here raises anything but :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import attrs
import orjson
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kaito.apimachinery._errors import go_float

__all__ = (
    "DEFAULT_LIMITS",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "DecodeError",
    "DecodeLimits",
    "Decoded",
    "decode_json",
    "decode_yaml",
    "decode_yaml_stream",
    "nesting_depth",
)

MAX_BODY_BYTES: Final = 3 * 1024 * 1024
"""kube-apiserver's request-body limit; also the most a YAML document may expand to."""
MAX_DEPTH: Final = 200
"""The deepest nesting of arrays and objects accepted (stored objects stay encodable)."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_PLAIN: Final = "tag:kaito.sh,2026:plain"
_STR: Final = "tag:yaml.org,2002:str"
_YAML_FLOAT: Final = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BOOLS: Final = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), True),
    **dict.fromkeys(("on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), False),
    **dict.fromkeys(("off", "Off", "OFF"), False),
}
_NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_SPECIAL_FLOATS: Final = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_RESOLVABLE: Final = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "bool", "int", "float", "null", "timestamp")
)
_SPACE_BEFORE_COLON: Final = re.compile(rb'"\s+:')
# Number shapes a JSON body needs fixing for (19+ digits may pass int64, 3-digit exponents may
# overflow a float): found by translating instead of a regex, which is ten times slower here.
_NUMBER_SHAPES: Final = bytes.maketrans(b"0123456789eE-", b"0000000000ee+")
_LONG_DIGITS: Final = b"0" * 19
_JSON_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


@attrs.frozen
class DecodeLimits:
    """How much one document may expand to and how deep it may nest."""

    max_bytes: int = MAX_BODY_BYTES
    max_depth: int = MAX_DEPTH


DEFAULT_LIMITS: Final = DecodeLimits()


class Decoded(NamedTuple):
    """A decoded document: the value, the paths of keys given twice, where it starts.

    ``line`` is the 1-based line where the document starts (YAML streams), ``position`` its place
    among the non-empty documents of a stream.
    """

    value: Any
    duplicates: tuple[str, ...] = ()
    line: int = 1
    position: int = 0


class DecodeError(ValueError):
    """A document that does not decode; ``message`` is worded as kube-apiserver words it."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# ------------------------------------------------------------------------------------------ JSON


def _json_kind(value: Any) -> str:
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else "value"


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How many arrays and objects nest in ``value``; stops counting past ``limit`` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node  # type: ignore[assignment]
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep(prefix: str, limit: int) -> DecodeError:
    return DecodeError(
        f"{prefix}exceeded max depth of {limit}: the document nests arrays and objects more "
        f"than {limit} levels deep"
    )


def _fix_numbers_and_text(value: Any) -> Any:
    """Integers beyond int64 become floats (as in Go), lone surrogates become U+FFFD."""
    if isinstance(value, dict):
        return {_fix_text(k): _fix_numbers_and_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_numbers_and_text(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError(
            "json: cannot unmarshal number into Go value of type float64 (it is out of range)"
        )
    if isinstance(value, str):
        return _fix_text(value)
    return value


def _fix_text(text: str) -> str:
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


class _Pairs(dict[str, Any]):
    """An object that had keys given twice (the slow path marks them)."""

    __slots__ = ("twice",)

    twice: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(pairs)
    if len(out) == len(pairs):
        return out
    marked = _Pairs(out)
    seen: set[str] = set()
    marked.twice = []
    for key, _ in pairs:
        if key in seen and key not in marked.twice:
            marked.twice.append(key)
        seen.add(key)
    return marked


def _collect_duplicates(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        if isinstance(value, _Pairs):
            found.extend(f"{path}.{k}" if path else k for k in value.twice)
            value = dict(value)
        for key, item in value.items():
            if isinstance(item, dict | list):
                value[key] = _collect_duplicates(item, f"{path}.{key}" if path else key, found)
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                value[i] = _collect_duplicates(item, f"{path}[{i}]", found)
    return value


def _needs_fixing(raw: bytes) -> bool:
    """Whether ``raw`` may hold numbers beyond int64 or float range, or lone surrogates."""
    shapes = raw.translate(_NUMBER_SHAPES)
    return (
        _LONG_DIGITS in shapes
        or b"e000" in shapes
        or b"e+000" in shapes
        or (b"\\u" in raw and _JSON_SURROGATE.search(raw) is not None)
    )


def _may_repeat_keys(raw: bytes, value: Any) -> bool:
    """Whether ``raw`` may give a key twice (then the exact, slower parse decides).

    Without backslashes every ``"`` in ``raw`` delimits a string, so ``":`` ends a key (or opens a
    string starting with a colon, counted alike in both texts); with no space before colons,
    ``raw`` has as many as the re-encoded value only if no key was dropped.
    """
    if b"\\" in raw or (
        (b" :" in raw or b"\t:" in raw or b"\n:" in raw or b"\r:" in raw)
        and _SPACE_BEFORE_COLON.search(raw)
    ):
        return True
    return raw.count(b'":') != orjson.dumps(value).count(b'":')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _slow_json(data: bytes, limits: DecodeLimits) -> tuple[Any, tuple[str, ...]]:
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep("json: ", limits.max_depth) from None
    except ValueError as error:
        raise DecodeError(f"json: {error}") from None
    if nesting_depth(value, limits.max_depth) > limits.max_depth:
        raise _too_deep("json: ", limits.max_depth)
    found: list[str] = []
    value = _collect_duplicates(value, "", found)
    return value, tuple(found)


def decode_json(data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS) -> Decoded:
    """Decode one JSON document as kube-apiserver does (``sigs.k8s.io/json``, strict checks).

    Raises:
        DecodeError: malformed JSON, too large, or nested deeper than ``limits.max_depth``.
    """
    if type(data) is bytes:
        raw = data
    else:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise DecodeError(f"Request entity too large: limit is {limits.max_bytes}")
    duplicates: tuple[str, ...] = ()
    fast = True
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Slow path: invalid UTF-8, lone surrogates or a real syntax error (exact messages).
        value, duplicates = _slow_json(raw, limits)
        fast = False
    if isinstance(value, dict | list):
        # Each level takes two bytes at least, so a short body cannot nest too deeply.
        if (
            len(raw) > 2 * limits.max_depth
            and raw.count(b"{") + raw.count(b"[") > limits.max_depth
            and nesting_depth(value, limits.max_depth) > limits.max_depth
        ):
            raise _too_deep("json: ", limits.max_depth)
        if fast and b"{" in raw and _may_repeat_keys(raw, value):
            value, duplicates = _slow_json(raw, limits)
    if _needs_fixing(raw):
        value = _fix_numbers_and_text(value)
    return Decoded(value, duplicates)


# ------------------------------------------------------------------------------------------ YAML


class _Composer(yaml.CSafeLoader):
    """libyaml's parser and composer; plain scalars keep a marker tag, resolved in Python."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        if kind is SequenceNode:
            return "tag:yaml.org,2002:seq"
        return "tag:yaml.org,2002:map"


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` without the range check (``None`` when it fails)."""
    sign = 1
    body = text
    if body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    base = 10
    lowered = body[:2].lower()
    if lowered == "0x":
        base, body = 16, body[2:]
    elif lowered == "0o":
        base, body = 8, body[2:]
    elif lowered == "0b":
        base, body = 2, body[2:]
    elif body[0] == "0" and len(body) > 1:
        base, body = 8, body[1:]
    if not body or not body.isascii() or not body.isalnum():
        return None
    try:
        return sign * int(body, base)
    except ValueError:
        return None


def _json_number(value: float | int) -> float | int:
    """A number after Go's JSON round trip (what kube-apiserver stores and sees)."""
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else float(value)
    if math.isnan(value) or math.isinf(value):
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        raise DecodeError(f"error converting YAML to JSON: json: unsupported value: {shown}")
    if value.is_integer() and abs(value) < 1e21:
        whole = int(value)
        if _INT64_MIN <= whole <= _INT64_MAX:
            return whole
    return value


def _resolve_plain(text: str) -> Any:
    """go-yaml v2's implicit typing of a plain scalar (values before the JSON round trip)."""
    if text in _NULLS:
        return None
    first = text[0]
    if first in "yYnNtTfFoO":
        return _BOOLS.get(text, text)
    if first == ".":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        return _parse_float(text, text) if "_" not in text else text
    if first in "+-0123456789":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            if _INT64_MIN <= number <= _INT64_MAX:
                return number
            if 0 <= number <= _UINT64_MAX and plain[:1] not in "+-":
                return number
        if _YAML_FLOAT.match(plain):
            return _parse_float(plain, text)
    return text


def _parse_float(text: str, original: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return original


def _scalar_value(node: ScalarNode) -> Any:
    tag = node.tag
    text = node.value
    if tag == _PLAIN:
        return _resolve_plain(text)
    if tag == _STR:
        return text
    if tag == "tag:yaml.org,2002:binary":
        try:
            return base64.b64decode(text.encode(), validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError) as error:
            raise _yaml_error(
                node, f"!!binary value contains invalid base64 data: {error}"
            ) from None
    if tag not in _RESOLVABLE:
        return text  # go-yaml keeps the text of a scalar with an unknown tag
    if tag == "tag:yaml.org,2002:timestamp":
        return text
    resolved = _resolve_plain(text)
    wanted = tag.rsplit(":", 1)[1]
    got = _yaml_type(resolved)
    if got == wanted or (wanted == "float" and got == "int"):
        return float(resolved) if wanted == "float" else resolved
    raise _yaml_error(node, f"cannot decode !!{got} `{text}` as a !!{wanted}")


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _yaml_error(node: Node, problem: str) -> DecodeError:
    line = node.start_mark.line + 1
    return DecodeError(
        f"error converting YAML to JSON: yaml: line {line}: {problem}",
        line=line,
        column=node.start_mark.column + 1,
    )


def _key_text(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise _yaml_error(node, "invalid map key: a key must be a scalar, not a collection")
    value = _scalar_value(node)
    if isinstance(value, str):
        return value
    if value is None:
        raise _yaml_error(node, "unsupported map key of type: <nil>, key: <nil>")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value > _INT64_MAX:
            raise _yaml_error(node, f"unsupported map key of type: uint64, key: {value}")
        return str(value)
    text = go_float(value, bits=32)
    return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _measure(root: Node, limits: DecodeLimits, raw_size: int) -> None:
    """Refuse a document whose aliases expand it past ``max_bytes``, or nested too deeply.

    Sizes are JSON-ish byte estimates memoized per node: an alias costs its whole expansion
    wherever it is used, while the walk stays linear in the document. What aliasing adds on top
    of the document itself is counted against the same limit as the request body.
    """
    done: dict[int, tuple[int, int]] = {}
    entered: set[int] = set()
    unique = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            children = _children(node)
            size, depth = 2 + len(children), 0
            unique += size
            for child in children:
                child_size, child_depth = done[id(child)]
                size += child_size
                depth = max(depth, child_depth)
            if raw_size + size - unique > limits.max_bytes:
                raise _yaml_error(
                    node,
                    "document contains excessive aliasing: it expands to more than "
                    f"{limits.max_bytes} bytes",
                )
            if depth + 1 > limits.max_depth:
                raise DecodeError(
                    f"error converting YAML to JSON: yaml: exceeded max depth of "
                    f"{limits.max_depth}: the document nests arrays and objects more than "
                    f"{limits.max_depth} levels deep",
                    line=node.start_mark.line + 1,
                )
            done[key] = (size, depth + 1)
            continue
        if key in done:
            continue
        if isinstance(node, ScalarNode):
            done[key] = (len(node.value) + 2, 0)
            unique += len(node.value) + 2
            continue
        if key in entered:
            raise _yaml_error(node, "anchor value contains itself (a recursive alias)")
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)


def _build(node: Node, path: str, duplicates: list[str]) -> Any:
    """The JSON value of a node; aliases are built anew at every use (callers mutate values)."""
    if isinstance(node, ScalarNode):
        value = _scalar_value(node)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return _json_number(value)
            except DecodeError as error:
                error.line = node.start_mark.line + 1
                error.column = node.start_mark.column + 1
                raise
        if isinstance(value, str):
            return _fix_text(value)
        return value
    if isinstance(node, SequenceNode):
        return [_build(child, f"{path}[{i}]", duplicates) for i, child in enumerate(node.value)]
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag == _PLAIN and key_node.value == "<<":
            _merge(out, value_node, path, duplicates)
            continue
        key = _fix_text(_key_text(key_node))
        child_path = f"{path}.{key}" if path else key
        if key in out:
            duplicates.append(child_path)
        out[key] = _build(value_node, child_path, duplicates)
    return out


def _merge(out: dict[str, Any], node: Node, path: str, duplicates: list[str]) -> None:
    """A ``<<`` merge key: mappings (later ones first, as go-yaml) set their keys into ``out``."""
    sources = list(reversed(node.value)) if isinstance(node, SequenceNode) else [node]
    for source in sources:
        if not isinstance(source, MappingNode):
            raise _yaml_error(source, "map merge requires map or sequence of maps as the value")
        for key, value in _build(source, path, duplicates).items():
            if key in out:
                duplicates.append(f"{path}.{key}" if path else key)
            out[key] = value


def _decode_node(node: Node, limits: DecodeLimits, position: int, raw_size: int) -> Decoded:
    _measure(node, limits, raw_size)
    duplicates: list[str] = []
    value = _build(node, "", duplicates)
    return Decoded(value, tuple(duplicates), line=node.start_mark.line + 1, position=position)


def _span(node: Node) -> int:
    return max(0, node.end_mark.index - node.start_mark.index)


def _syntax_error(error: yaml.YAMLError) -> DecodeError:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return DecodeError(f"error converting YAML to JSON: yaml: {problem}")
    return DecodeError(
        f"error converting YAML to JSON: yaml: line {mark.line + 1}: {problem}",
        line=mark.line + 1,
        column=mark.column + 1,
    )


def decode_yaml(data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS) -> Decoded:
    """Decode the first document of a YAML body, as ``sigs.k8s.io/yaml`` does.

    A body that is JSON (as kubectl sends for server-side apply) takes the JSON fast path, with
    the YAML conversion's number semantics. An empty body decodes to ``None``.

    Raises:
        DecodeError: malformed YAML, excessive aliasing, too deep, or too large.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise DecodeError(f"Request entity too large: limit is {limits.max_bytes}")
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            decoded = decode_json(raw, limits)
        except DecodeError:
            pass
        else:
            return decoded._replace(value=_yaml_numbers(decoded.value))
    try:
        node = yaml.compose(raw, Loader=_Composer)
    except yaml.YAMLError as error:
        raise _syntax_error(error) from None
    except RecursionError:
        raise _too_deep("error converting YAML to JSON: yaml: ", limits.max_depth) from None
    if node is None:
        return Decoded(None)
    return _decode_node(node, limits, 0, len(raw))


def _yaml_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _yaml_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_numbers(v) for v in value]
    if isinstance(value, float):
        return _json_number(value)
    return value


def decode_yaml_stream(
    data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS
) -> Iterator[Decoded | DecodeError]:
    """Decode every non-empty document of a YAML stream (a file ``kubectl apply`` would read).

    Each document is limited on its own, as the request kubectl would send for it; a document
    that fails for its content (aliasing, depth, a bad key) yields its error and the stream goes
    on; a syntax error yields its error and ends the stream.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    nodes = yaml.compose_all(raw, Loader=_Composer)
    index = 0
    while True:
        try:
            node = next(nodes)
        except StopIteration:
            return
        except yaml.YAMLError as error:
            yield _syntax_error(error)
            return
        except RecursionError:
            yield _too_deep("error converting YAML to JSON: yaml: ", limits.max_depth)
            return
        if node is None or (
            isinstance(node, ScalarNode) and node.tag == _PLAIN and node.value in _NULLS
        ):
            continue
        try:
            yield _decode_node(node, limits, index, _span(node))
        except DecodeError as error:
            yield error
        index += 1
