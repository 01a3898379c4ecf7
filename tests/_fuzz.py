"""Property-based fuzzing of an OpenAPI-described API with schemathesis, shared by the `/v1` and gateway tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Check = Callable[[schemathesis.CheckContext, schemathesis.Response, Case], bool | None]
REQUEST_TIMEOUT_S = 10.0


def error_envelope(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
    """Every 4xx is JSON in the one error envelope, carrying the request id of its `x-request-id` header."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":
        return
    status = response.status_code
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/json", f"{status} has content type {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), f"{status} body is not an object: {body!r}"
    assert set(body) == {"error"}, f"{status} body is not the error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"{status} `error` is not an object: {body!r}"
    for key in ("code", "message", "request_id"):
        assert isinstance(error.get(key), str), f"{status} `error.{key}` is not a string: {body!r}"
    header = response.headers.get("x-request-id", [""])[0]
    assert error["request_id"] == header, f"{status} request_id {error['request_id']!r} != x-request-id {header!r}"


def operations(schema: OpenApiSchema, order: Sequence[str] = ()) -> list[Operation]:
    """Every operation, those whose label starts with an earlier entry of `order` first; one that schemathesis
    cannot read fails the test."""
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result.err()}"
        found.append(result.ok())

    def rank(operation: Operation) -> int:
        return next((i for i, prefix in enumerate(order) if operation.label.startswith(prefix)), len(order))

    return sorted(found, key=rank)


# The tests walk the operations themselves: `schemathesis.pytest.from_fixture` would make one item per operation, but
# it renames items through `Item._nodeid`, which pytest 9.2 no longer has (AttributeError).
def fuzz(
    schema: OpenApiSchema,
    *,
    checks: Sequence[Check],
    max_examples: int,
    order: Sequence[str] = (),
    prepare: Callable[[Case], Case] = lambda case: case,
) -> dict[str, str]:
    """Send each operation `max_examples` requests, valid and invalid mixed, and check every answer with `checks` and
    `error_envelope`; the first failure of each operation, by its label (empty: none failed)."""
    failures: dict[str, str] = {}
    for operation in operations(schema, order):
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        ).map(prepare)

        # Derandomized: the same requests on every run. No shrinking: a failure reports its first example at once,
        # where shrinking would send many more requests.
        @hypothesis.settings(
            max_examples=max_examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
        )
        @hypothesis.given(case=cases)
        def check(case: Case) -> None:
            response = case.call(timeout=REQUEST_TIMEOUT_S)
            case.validate_response(response, checks=list(checks), additional_checks=[error_envelope])

        try:
            check()
        except (AssertionError, schemathesis.errors.FailureGroup) as exc:
            failures[operation.label] = str(exc)
    return failures
