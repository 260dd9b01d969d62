"""Label and field selectors: the string form of list/watch queries and the object form
(``metav1.LabelSelector``) used by workloads, webhooks and node affinity."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from kaito.apimachinery import FieldError, invalid, label_key_problems, label_value_problems
from kaito.cluster._errors import StatusError, bad_request

__all__ = (
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "label_selector_from_object",
    "parse_field_selector",
    "parse_label_selector",
)

_EMPTY: Mapping[str, str] = {}


@attrs.frozen
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str
    """``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``, ``gt`` or ``lt``."""
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this clause."""
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if op in ("=", "in"):
            return value is not None and value in self.values
        if op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number = int(value)
            bound = int(next(iter(self.values)))
        except ValueError:
            return False
        return number > bound if op == "gt" else number < bound


@attrs.frozen
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when every object matches."""
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` is selected."""
        if self.matches_nothing:
            return False
        labels = labels or _EMPTY
        return all(r.matches(labels) for r in self.requirements)


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _refuse(error: FieldError, text: str) -> StatusError:
    return bad_request(f"unable to parse requirement: {error} (selector {text!r})")


def _check_key(key: str, text: str) -> None:
    """``labels.NewRequirement``'s key check (``IsQualifiedName``, at the path ``key``)."""
    problems = label_key_problems(key)
    if problems:
        raise _refuse(invalid("key", key, "; ".join(problems)), text)


def _check_values(key: str, values: Iterable[str], text: str) -> None:
    """Its value checks (``IsValidLabelValue``, at ``values[i][key]`` of the sorted values)."""
    for i, value in enumerate(sorted(values)):
        problems = label_value_problems(value)
        if problems:
            raise _refuse(invalid(f"values[{i}][{key}]", value, "; ".join(problems)), text)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise bad_request(f"unable to parse label selector {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the ``labelSelector`` query parameter.

    Raises:
        StatusError: 400 BadRequest naming the clause that does not parse.
    """
    if not text or not text.strip():
        return LabelSelector()
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def fail(why: str) -> StatusError:
        return bad_request(f"unable to parse requirement: {why} in label selector {text!r}")

    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            if i + 1 >= len(tokens):
                raise fail("missing key after '!'")
            key = tokens[i + 1]
            _check_key(key, text)
            requirements.append(Requirement(key, "!"))
            i += 2
        else:
            key = token
            _check_key(key, text)
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                requirements.append(Requirement(key, "exists"))
            else:
                op = tokens[i]
                i += 1
                if op in ("=", "==", "!=", ">", "<"):
                    if i >= len(tokens) or tokens[i] == ",":
                        value = ""
                    else:
                        value = tokens[i]
                        i += 1
                    if op in (">", "<"):
                        if not value.lstrip("-").isdigit():
                            raise fail(
                                "for 'gt', 'lt' operators, the value must be an integer, got "
                                f"{value!r}"
                            )
                        requirements.append(
                            Requirement(key, "gt" if op == ">" else "lt", frozenset({value}))
                        )
                    else:
                        _check_values(key, (value,), text)
                        requirements.append(
                            Requirement(key, "!=" if op == "!=" else "=", frozenset({value}))
                        )
                elif op in ("in", "notin"):
                    if i >= len(tokens) or tokens[i] != "(":
                        raise fail(f"found '{tokens[i] if i < len(tokens) else ''}', expected: '('")
                    i += 1
                    values: set[str] = set()
                    expect_value = True
                    while i < len(tokens) and tokens[i] != ")":
                        if tokens[i] == ",":
                            if expect_value:
                                values.add("")
                            expect_value = True
                        else:
                            values.add(tokens[i])
                            expect_value = False
                        i += 1
                    if i >= len(tokens):
                        raise fail("found '', expected: ')'")
                    i += 1
                    _check_values(key, values, text)
                    requirements.append(Requirement(key, op, frozenset(values)))
                else:
                    raise fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
    return LabelSelector(tuple(requirements))


def label_selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object; ``None`` selects nothing, ``{}`` everything."""
    if selector is None:
        return LabelSelector(matches_nothing=True)
    requirements = [
        Requirement(str(k), "=", frozenset({str(v)}))
        for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        op = ops.get(expression.get("operator", ""))
        if op is None:
            return LabelSelector(matches_nothing=True)
        requirements.append(
            Requirement(
                str(expression.get("key", "")), op, frozenset(expression.get("values") or ())
            )
        )
    return LabelSelector(tuple(requirements))


@attrs.frozen
class FieldSelector:
    """``field=value`` / ``field!=value`` clauses over a kind's selectable fields."""

    clauses: tuple[tuple[str, bool, str], ...] = ()
    """``(field, equal, value)`` triples."""

    @property
    def empty(self) -> bool:
        """True when every object matches."""
        return not self.clauses

    def value_of(self, field: str) -> str | None:
        """The value required by an equality clause on ``field``, if any."""
        for name, equal, value in self.clauses:
            if name == field and equal:
                return value
        return None

    def matches(self, get: Callable[[str], str]) -> bool:
        """Whether an object matches, reading its field values through ``get``."""
        return all((get(name) == value) == equal for name, equal, value in self.clauses)


def parse_field_selector(
    text: str | None, allowed: Sequence[str], *, custom: bool
) -> FieldSelector:
    """Parse the ``fieldSelector`` query parameter against the kind's selectable fields.

    Raises:
        StatusError: 400 BadRequest for an unknown field, worded for built-in or custom kinds.
    """
    if not text or not text.strip():
        return FieldSelector()
    clauses: list[tuple[str, bool, str]] = []
    for part in _split_unescaped(text):
        if not part:
            continue
        if "!=" in part:
            name, value = part.split("!=", 1)
            equal = False
        elif "==" in part:
            name, value = part.split("==", 1)
            equal = True
        elif "=" in part:
            name, value = part.split("=", 1)
            equal = True
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name = name.strip()
        if name not in allowed:
            if custom:
                known = ", ".join(f'"{f}"' for f in allowed)
                raise bad_request(f'"{name}" is not a known field selector: only {known}')
            raise bad_request(f"field label not supported: {name}")
        clauses.append(
            (name, equal, value.replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\"))
        )
    return FieldSelector(tuple(clauses))


def _split_unescaped(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
