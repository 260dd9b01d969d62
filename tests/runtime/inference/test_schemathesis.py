"""Schemathesis against the server's own OpenAPI document, over TCP to the real server process.

Every operation gets valid requests generated from the document, and the POST routes invalid
ones too (the GET routes take no parameters). The checks: no 5xx,
only documented status codes and content types, bodies that match their documented schemas, and
requests that break the schema refused with a 4xx. Marker ``fuzz``: a small number of examples in
the default run, more under ``nox -s fuzz``.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.runtime.inference.conftest import RunningServer
from tests.support.fuzz import FuzzBudget, fuzz_seconds, hypothesis_budget

pytestmark = pytest.mark.fuzz

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


OPERATIONS = [
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/chat"),
]


@pytest.fixture(scope="module")
def api_schema(server: RunningServer) -> Any:
    loaded = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = {(op.method.upper(), op.path): op for op in _operations(loaded)}
    assert set(operations) == set(OPERATIONS)  # the document lists every route
    return operations


def _operations(loaded: Any) -> list[Any]:
    return [result.ok() for result in loaded.get_all_operations()]


SHORT = 8


def _short(case: schemathesis.Case) -> None:
    """Cap a valid request's generation at a few tokens (still valid): the budget then goes to
    variety rather than to the context-long generations the defaults allow."""
    body = case.body
    if not isinstance(body, dict):
        return
    if case.path == "/chat":
        kwargs = body.get("generate_kwargs")
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        kwargs["max_new_tokens"] = min(kwargs.get("max_new_tokens") or SHORT, SHORT)
        body["generate_kwargs"] = kwargs
        return
    body["max_tokens"] = min(body.get("max_tokens") or SHORT, SHORT)
    if body.get("max_completion_tokens"):
        body["max_completion_tokens"] = min(body["max_completion_tokens"], SHORT)


CASES = [
    *[(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS],
    *[(method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS if method == "POST"],
]


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES]
)
def test_the_server_answers_as_its_openapi_document_says(
    api_schema: dict[tuple[str, str], Any],
    server: RunningServer,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[(method, path)]
    # The POST routes share the budget (a third each per mode); a GET has nothing to vary.
    budget = FuzzBudget(seconds=fuzz_seconds() / 3 if method == "POST" else 5)

    @settings(hypothesis_budget(), max_examples=max(5, int(4 * fuzz_seconds())))
    @given(case=operation.as_strategy(generation_mode=mode))
    def examples(case: schemathesis.Case) -> None:
        if budget.spend():
            if mode is GenerationMode.POSITIVE:
                _short(case)
            case.call_and_validate(base_url=server.base_url, checks=CHECKS, timeout=60)

    examples()
    budget.report(f"schemathesis {mode.value} {method} {path}")
