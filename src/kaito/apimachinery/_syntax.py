"""Name, label and annotation syntax with kube-apiserver's exact patterns and messages.

Bottom layer (pure functions, ``k8s.io/apimachinery/pkg/util/validation``). Each function returns a
list of problems, empty when the value is valid, worded as kube-apiserver words them, so callers
wrap them in field errors with the path they know.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = (
    "DNS1035_LABEL",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "LABEL_VALUE",
    "QUALIFIED_NAME",
    "NameValidator",
    "annotation_key_problems",
    "dns1035_label_problems",
    "dns1123_label_problems",
    "dns1123_subdomain_problems",
    "label_key_problems",
    "label_value_problems",
    "path_segment_problems",
    "qualified_name_problems",
)

NameValidator = Callable[[str], list[str]]
"""Checks an object name; returns its problems (``[]`` when valid)."""

DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN: Final = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL: Final = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME: Final = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE: Final = r"(" + QUALIFIED_NAME + r")?"

_RE_LABEL: Final = re.compile(DNS1123_LABEL)
_RE_SUBDOMAIN: Final = re.compile(DNS1123_SUBDOMAIN)
_RE_DNS1035: Final = re.compile(DNS1035_LABEL)
_RE_QUALIFIED: Final = re.compile(QUALIFIED_NAME)
_RE_LABEL_VALUE: Final = re.compile(LABEL_VALUE)

_DNS1123_LABEL_MAX: Final = 63
_DNS1123_SUBDOMAIN_MAX: Final = 253
_QUALIFIED_NAME_MAX: Final = 63
_LABEL_VALUE_MAX: Final = 63


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    """apimachinery's ``RegexError``: the message, examples and the regex."""
    if not examples:
        return f"{message} (regex used for validation is '{pattern}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def _max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


_LABEL_MSG: Final = _regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character",
    DNS1123_LABEL,
    "my-name",
    "123-abc",
)
_SUBDOMAIN_MSG: Final = _regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character",
    DNS1123_SUBDOMAIN,
    "example.com",
)
_DNS1035_MSG: Final = _regex_error(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character",
    DNS1035_LABEL,
    "my-name",
    "abc-123",
)
_QUALIFIED_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_QUALIFIED_MSG: Final = _regex_error(_QUALIFIED_ERR, QUALIFIED_NAME, "MyName", "my.name", "123-abc")
_LABEL_VALUE_MSG: Final = _regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character",
    LABEL_VALUE,
    "MyValue",
    "my_value",
    "12345",
)


def dns1123_label_problems(value: str, *, max_length: int = _DNS1123_LABEL_MAX) -> list[str]:
    """Problems with ``value`` as an RFC 1123 label (``IsDNS1123Label``)."""
    problems = []
    if len(value) > max_length:
        problems.append(_max_len(max_length))
    if not _RE_LABEL.fullmatch(value):
        if _RE_SUBDOMAIN.fullmatch(value):
            problems.append("must not contain dots")
        else:
            problems.append(_LABEL_MSG)
    return problems


def dns1123_subdomain_problems(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1123 subdomain (``IsDNS1123Subdomain``)."""
    problems = []
    if len(value) > _DNS1123_SUBDOMAIN_MAX:
        problems.append(_max_len(_DNS1123_SUBDOMAIN_MAX))
    if not _RE_SUBDOMAIN.fullmatch(value):
        problems.append(_SUBDOMAIN_MSG)
    return problems


def dns1035_label_problems(value: str) -> list[str]:
    """Problems with ``value`` as an RFC 1035 label (``IsDNS1035Label``; Service names)."""
    problems = []
    if len(value) > _DNS1123_LABEL_MAX:
        problems.append(_max_len(_DNS1123_LABEL_MAX))
    if not _RE_DNS1035.fullmatch(value):
        problems.append(_DNS1035_MSG)
    return problems


def qualified_name_problems(value: str) -> list[str]:
    """Problems with ``value`` as a qualified name ``[prefix/]name`` (``IsQualifiedName``)."""
    problems: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems.extend("prefix part " + p for p in dns1123_subdomain_problems(prefix))
    else:
        return [
            "a qualified name "
            + _QUALIFIED_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > _QUALIFIED_NAME_MAX:
        problems.append("name part " + _max_len(_QUALIFIED_NAME_MAX))
    if not _RE_QUALIFIED.fullmatch(name):
        problems.append("name part " + _QUALIFIED_MSG)
    return problems


label_key_problems = qualified_name_problems
"""Problems with a label key (a qualified name)."""


def annotation_key_problems(key: str) -> list[str]:
    """Problems with ``key`` as an annotation key (a qualified name, case-insensitively)."""
    return qualified_name_problems(key.lower())


def label_value_problems(value: str) -> list[str]:
    """Problems with ``value`` as a label value (``IsValidLabelValue``)."""
    problems = []
    if len(value) > _LABEL_VALUE_MAX:
        problems.append(_max_len(_LABEL_VALUE_MAX))
    if not _RE_LABEL_VALUE.fullmatch(value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


def path_segment_problems(value: str, *, prefix: bool = False) -> list[str]:
    """Problems with ``value`` as a URL path segment (every object name must be one)."""
    if not prefix and value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]
