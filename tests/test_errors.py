"""Error codes are API: unique, matching the published list, and rendered in one envelope."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from _auth import owner

from fnserve import errors

# The published codes. Adding one is fine; changing or removing one breaks clients.
PUBLISHED_CODES = {
    "invalid_spec": 422,
    "invalid_request": 400,
    "validation_error": 422,
    "uri_too_long": 414,
    "unsupported_media_type": 415,
    "headers_too_large": 431,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "service_not_found": 404,
    "job_not_found": 404,
    "asset_not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "service_exists": 409,
    "job_conflict": 409,
    "job_cancelled": 409,
    "asset_conflict": 409,
    "payload_too_large": 413,
    "archive_too_large": 413,
    "queue_full": 429,
    "function_error": 500,
    "internal_error": 500,
    "replica_crashed": 502,
    "command_unreachable": 502,
    "no_replicas_available": 503,
    "deployment_failed": 503,
    "env_build_failed": 422,
    "service_disabled": 503,
    "service_inactive": 503,
    "invocation_timeout": 504,
    "storage_unavailable": 507,
    "storage_full": 507,
    "home_in_use": 409,
}


def test_error_codes_are_unique_and_match_the_published_list() -> None:
    classes = [cls for cls in errors.all_error_classes() if cls is not errors.FnserveError]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert {cls.code: cls.http_status for cls in classes} == PUBLISHED_CODES


def test_error_envelope_shape() -> None:
    error = errors.ServiceNotFound("No service named 'x'", details={"name": "x"})
    assert error.to_dict("req-1") == {
        "error": {
            "code": "service_not_found",
            "message": "No service named 'x'",
            "request_id": "req-1",
            "details": {"name": "x"},
        }
    }


def test_error_from_code_rebuilds_the_class() -> None:
    rebuilt = errors.error_from_code("replica_crashed", "gone")
    assert isinstance(rebuilt, errors.ReplicaCrashed)
    assert isinstance(errors.error_from_code("no_such_code", "?"), errors.InternalError)


# One request per code the server produces today, each checked for status, code and envelope.
ERROR_REQUESTS = [
    ("not_found", "POST", "/nowhere", None),
    ("not_found", "POST", "/echo/nowhere", None),
    ("method_not_allowed", "GET", "/echo/echo", None),
    ("invalid_request", "POST", "/echo/echo", b"{not json"),
    ("invalid_request", "POST", "/echo/echo", b"[1, 2]"),
    ("validation_error", "POST", "/echo/echo", b'{"wrong": 1}'),
    ("function_error", "POST", "/echo/boom", b"{}"),
    ("payload_too_large", "POST", "/echo/echo", b'{"text": "' + b"x" * (6 * 1024 * 1024) + b'"}'),
    ("uri_too_long", "GET", "/echo/" + "a" * 3000, None),
    ("uri_too_long", "GET", "/echo/" + "a" * 9000, None),
    ("unsupported_media_type", "POST", "/echo/echo", b'{"text": "hi"}'),
    ("unsupported_media_type", "POST", "/v1/services", b'{"spec": 1}'),
    ("service_not_found", "GET", "/v1/services/nope", None),
    ("not_found", "GET", "/v1/nowhere", None),
    ("validation_error", "POST", "/v1/services", b'{"spec": 1}'),
]


@pytest.mark.parametrize(("code", "method", "path", "body"), ERROR_REQUESTS)
def test_error_responses_use_the_envelope(echo_url: str, code: str, method: str, path: str, body: bytes | None) -> None:
    headers = owner(echo_url)
    if code == "unsupported_media_type":
        headers["content-type"] = "text/plain"
    response = httpx.request(method, echo_url + path, content=body, headers=headers, timeout=10)
    expected = next(cls for cls in errors.all_error_classes() if cls.code == code)
    assert response.status_code == expected.http_status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


def test_docs_errors_lists_every_code_with_its_status() -> None:
    """docs/ERRORS.md's table is the published list, code for code and status for status."""
    table = (Path(__file__).parent.parent / "docs" / "ERRORS.md").read_text()
    listed = {code: int(status) for code, status in re.findall(r"^\| `(\w+)` \| (\d{3}) \|", table, re.MULTILINE)}

    assert listed == PUBLISHED_CODES
