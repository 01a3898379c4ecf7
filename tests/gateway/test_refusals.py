"""Bad requests are refused by the server, each with its own status and code, and none of them reaches a replica."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from _auth import owner
from _raw_http import connect
from counted import counted

import fnserve as fs
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until

BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def add_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(max_body_bytes=BODY_LIMIT)
    with run_server(home=tmp_path_factory.mktemp("refusals"), settings=settings, graceful_shutdown_s=2) as url:
        with fs.deploy(counted, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield f"{url}/counted"


def calls(add_url: str) -> int:
    count: int = httpx.get(f"{add_url}/calls", timeout=10).json()
    return count


@pytest.mark.parametrize(
    ("content", "status", "code", "mentions"),
    [
        (b'{"x": "seven", "items": [1]}', 422, "validation_error", ["`x`"]),
        (b'{"x": 1}', 422, "validation_error", ["`items` is required"]),
        (b'{"x": 1, "items": [1, "b"]}', 422, "validation_error", ["`items.1`"]),
        (b'{"x": 1, "items": [], "colour": "red"}', 422, "validation_error", ["`colour` is not a parameter"]),
        (b'{"x": [], "items": {}}', 422, "validation_error", ["`x`", "`items`"]),
        (b'{"x": 1, "items": [', 400, "invalid_request", ["not valid JSON"]),
        (b"[1, 2]", 400, "invalid_request", ["must be a JSON object"]),
        (b'{"x": 1, "items": [' + b"1, " * 2000 + b"1]}", 413, "payload_too_large", ["4096 byte limit", "assets"]),
    ],
)
def test_bad_arguments_are_refused_before_the_replica(
    add_url: str, content: bytes, status: int, code: str, mentions: list[str]
) -> None:
    """1. The request is answered with its status and code, the message naming each bad field.
    2. The replica's call count did not move."""
    before = calls(add_url)
    response = httpx.post(f"{add_url}/add", content=content, timeout=10)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    for text in mentions:
        assert text in error["message"]
    if status == 422:
        named = {text.split("`")[1] for text in mentions}
        assert {field["field"] for field in error["details"]["fields"]} == named
    assert calls(add_url) == before


def test_unknown_route_and_wrong_method_never_reach_the_replica(add_url: str) -> None:
    before = calls(add_url)
    missing = httpx.post(f"{add_url}/nope", json={}, timeout=10)
    assert missing.status_code == 404
    wrong = httpx.put(f"{add_url}/add", json={"x": 1, "items": []}, timeout=10)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert calls(add_url) == before


def test_valid_arguments_are_coerced_and_reach_the_replica(add_url: str) -> None:
    """Lax values the type hints accept ("7" for an int, 2 for a float) pass the gateway; the replica coerces them;
    an argument the initializer supplies (`calls`) may be left out."""
    before = calls(add_url)
    response = httpx.post(f"{add_url}/add", json={"x": "7", "items": [1, "2"], "scale": 2}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == 20.0
    assert calls(add_url) == before + 1


def test_call_whose_client_leaves_before_its_body_ends_never_runs(add_url: str) -> None:
    """1. A POST to /touch (it needs no arguments) announces a 100-byte body, sends 2 bytes of it, and leaves.
    2. The gateway counts a 499 (the client left), and the replica never ran the call (it used to, with no
       arguments)."""
    url = add_url.removesuffix("/counted")
    gone = 'fnserve_requests_total{service="counted",status="499"}'

    def left() -> float:
        response = httpx.get(f"{url}/metrics", headers=owner(url), timeout=10)
        samples = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if line and line[0] != "#")
        return float(samples.get(gone, 0))

    before, before_left = calls(add_url), left()
    with connect(url) as sock:
        sock.sendall(b"POST /counted/touch HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n{}")
    wait_until(lambda: left() > before_left, what="the gateway saw the client leave")
    assert calls(add_url) == before


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 200),  # a body with no content type is taken as JSON
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/vnd.example+json", 200),
        ("text/plain", 415),  # a JSON-looking body, refused rather than parsed
        ("text/plain;charset=UTF-8", 415),  # what fetch() sends for a string body
        ("application/x-www-form-urlencoded", 415),  # `curl -d` without `-H 'content-type: application/json'`
        ("multipart/form-data; boundary=x", 415),
    ],
)
def test_json_endpoints_refuse_other_content_types_before_the_replica(
    add_url: str, content_type: str | None, status: int
) -> None:
    """1. A call with a JSON body is answered (200) or refused (415 `unsupported_media_type`, naming the expected
    type and the curl flag), by its content type.
    2. A refused call never reached the replica; `/run` refuses the same way."""
    headers = {} if content_type is None else {"content-type": content_type}
    before = calls(add_url)
    response = httpx.post(f"{add_url}/add", content=b'{"x": 1, "items": [2]}', headers=headers, timeout=10)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == 3.0
        assert calls(add_url) == before + 1
        return
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "-H 'content-type: application/json'" in error["message"]
    assert error["details"] == {"expected": "application/json", "received": content_type}
    job = httpx.post(f"{add_url}/run", content=b'{"endpoint": "/add", "input": {}}', headers=headers, timeout=10)
    assert job.status_code == 415
    assert job.json()["error"]["code"] == "unsupported_media_type"
    assert calls(add_url) == before
