"""Synchronous invocation through the gateway: routing, arguments, results and errors."""

from __future__ import annotations

import httpx
from _auth import owner


def post(url: str, json: object = None, **kwargs: object) -> httpx.Response:
    return httpx.post(url, json=json, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_invoke_returns_json_result(echo_url: str) -> None:
    response = post(f"{echo_url}/echo/echo", {"text": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"text": "hi", "greeting": "hello", "shared": 1}


def test_invoke_caller_value_wins_over_initializer_value(echo_url: str) -> None:
    response = post(f"{echo_url}/echo/echo", {"text": "hi", "greeting": "yo", "shared": 5})
    assert response.json() == {"text": "hi", "greeting": "yo", "shared": 5}


def test_invoke_coerces_path_parameters_and_reads_query_for_get(echo_url: str) -> None:
    response = httpx.get(f"{echo_url}/echo/items/42", params={"q": "find"}, timeout=10)
    assert response.json() == {"item_id": 42, "type": "int", "q": "find"}


def test_invoke_returns_integers_beyond_64_bits(echo_url: str) -> None:
    big = 2**70 + 1  # orjson stops at 64 bits; JSON itself does not
    response = httpx.get(f"{echo_url}/echo/items/{big}", timeout=10)
    assert response.status_code == 200
    assert response.json()["item_id"] == big


def test_invoke_refuses_uncoercible_path_parameter_with_422(echo_url: str) -> None:
    response = httpx.get(f"{echo_url}/echo/items/abc", timeout=10)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "item_id" in error["message"]


def test_invoke_names_every_bad_field(echo_url: str) -> None:
    response = post(f"{echo_url}/echo/echo", {"shared": "many", "nope": 1})
    assert response.status_code == 422
    fields = {problem["field"] for problem in response.json()["error"]["details"]["fields"]}
    assert fields == {"text", "shared", "nope"}
    message = response.json()["error"]["message"]
    assert "`text` is required" in message
    assert "`nope` is not a parameter of this endpoint" in message


def test_invoke_function_error_keeps_the_replica_serving(echo_url: str) -> None:
    before = httpx.get(f"{echo_url}/echo/whoami", timeout=10).json()["pid"]
    response = post(f"{echo_url}/echo/boom", {})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "function_error"
    assert response.json()["error"]["message"] == "ValueError: boom"
    assert "Traceback" not in response.text
    assert httpx.get(f"{echo_url}/echo/whoami", timeout=10).json()["pid"] == before


def test_invoke_unserializable_result_names_the_type(echo_url: str) -> None:
    response = post(f"{echo_url}/echo/unserializable", {})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "function_error"
    assert "not JSON-serializable" in error["message"]
    assert "object" in error["message"]


def test_invoke_async_endpoint_runs_on_the_loop(echo_url: str) -> None:
    assert post(f"{echo_url}/echo/async", {"text": "quiet"}).json() == "QUIET"


def test_invoke_api_parameter_receives_the_description(echo_url: str) -> None:
    api = post(f"{echo_url}/echo/api", {}).json()
    assert api["name"] == "echo"
    assert api["description"] == "Echoes arguments back."
    hello = api["paths"]["/echo"]
    assert hello["method"] == "POST"
    assert hello["streaming"] is False
    assert hello["parameters"]["text"] == {"type": "str", "default": None, "auto": False}
    # Filled in by the initializer (greeting="hello", shared=1): the default shown is the value's repr.
    assert hello["parameters"]["greeting"] == {"type": "str", "default": "'hello'", "auto": True}
    assert hello["parameters"]["shared"] == {"type": "int", "default": "1", "auto": True}
    assert hello["return_type"] == "dict[str, Any]"
    assert "_api" not in api["paths"]["/api"]["parameters"]


def test_invoke_wrong_method_gets_405_with_allow(echo_url: str) -> None:
    response = httpx.post(f"{echo_url}/echo/whoami", timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_unknown_path_names_the_routes_listing(echo_url: str) -> None:
    response = post(f"{echo_url}/missing/thing", {})
    assert response.status_code == 404
    assert "/-/routes" in response.json()["error"]["message"]


def test_prefix_match_respects_segment_boundaries(echo_url: str) -> None:
    assert post(f"{echo_url}/echoes/echo", {"text": "x"}).status_code == 404


def test_service_ping_reports_healthy(echo_url: str) -> None:
    response = httpx.get(f"{echo_url}/echo/ping", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_routes_and_healthz(echo_url: str) -> None:
    routes = httpx.get(f"{echo_url}/-/routes", headers=owner(echo_url), timeout=10).json()
    assert routes["/echo"]["service"] == "echo"
    assert routes["/echo"]["state"] == "ACTIVE"
    assert "GET /echo/items/{item_id}" in routes["/echo"]["endpoints"]
    assert httpx.get(f"{echo_url}/-/healthz", timeout=10).json() == {"status": "ok"}


def test_request_id_is_echoed_when_plain_and_replaced_when_not(echo_url: str) -> None:
    kept = post(f"{echo_url}/echo/echo", {"text": "x"}, headers={"x-request-id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = post(f"{echo_url}/echo/echo", {"text": "x"}, headers={"x-request-id": "x" * 500})
    assert replaced.headers["x-request-id"] != "x" * 500
    assert len(replaced.headers["x-request-id"]) == 32
