"""WsgiApp under a real uvicorn: a Flask app's routes, its environ (the route prefix as SCRIPT_NAME), streamed bodies
both ways, errors, and a WebSocket refused."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest
from _asgi_server import serve_asgi
from flask_app import CLOSED, plain_wsgi
from flask_app import app as flask_app

from fnserve.apps.wsgi import WsgiApp
from fnserve.testing import wait_until

PREFIX = "/flask"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    # uvicorn takes the request's path as the part after the prefix (a proxy stripped it) and gives the app
    # `root_path + path`, as the gateway does.
    with serve_asgi(WsgiApp(flask_app, max_threads=4), root_path=PREFIX) as served:
        yield served


def test_path_parameters_reach_the_flask_routes(url: str) -> None:
    assert httpx.get(f"{url}/hello/Ada").text == "Hello, Ada!"
    response = httpx.get(f"{url}/users/42", params={"q": "a b"})

    assert response.status_code == 200
    assert response.json() == {"user_id": 42, "kind": "int", "q": "a b"}
    assert httpx.get(f"{url}/users/not-a-number").status_code == 404


def test_form_and_json_bodies_are_read(url: str) -> None:
    form = httpx.post(f"{url}/form", data={"name": "Ada", "lang": "fr"})
    assert form.json() == {"fields": {"name": "Ada", "lang": "fr"}, "content_type": "application/x-www-form-urlencoded"}

    echoed = httpx.post(f"{url}/json", json={"numbers": [1, 2, 3], "text": "é"})
    assert echoed.json() == {"got": {"numbers": [1, 2, 3], "text": "é"}, "method": "POST"}


def test_route_prefix_is_the_script_name_so_url_for_builds_urls_that_work_through_it(url: str) -> None:
    response = httpx.get(f"{url}/where", headers={"host": "example.test:8443"})

    assert response.json() == {
        "script_name": PREFIX,
        "path_info": "/where",
        "url_for_hello": f"{PREFIX}/hello/x",
        "host": "example.test:8443",
    }


def test_headers_reach_the_app_and_repeated_cookies_are_joined(url: str) -> None:
    response = httpx.get(f"{url}/headers", headers=[("x-custom", "yes"), ("cookie", "a=1"), ("cookie", "b=2")])

    assert response.json() == {"x_custom": "yes", "cookie": "a=1; b=2"}


def test_streamed_response_arrives_chunk_by_chunk_before_the_app_finishes(url: str) -> None:
    """The first event reaches the client while the app still sleeps before its next ones: the last comes about two
    pauses after it (a buffered answer would bring them together), however slow the machine is to start."""
    with httpx.stream("GET", f"{url}/stream", params={"count": 3, "pause_s": 1.0}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.iter_text()
        first = next(chunks)
        first_at = time.monotonic()
        rest = "".join(chunks)
        last_at = time.monotonic()

    assert first.startswith("data: line 0")
    assert last_at - first_at > 1.5
    assert (first + rest).count("data: line") == 3


def test_large_upload_is_streamed_into_wsgi_input(url: str) -> None:
    """A 5 MiB body sent in 64 KiB pieces (chunked, no length) is read by the app a piece at a time, intact."""
    payload = bytes(range(256)) * (5 * 4096)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 65_536):
            yield payload[start : start + 65_536]

    response = httpx.post(f"{url}/digest", content=pieces(), timeout=30)

    assert response.json() == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_app_exception_is_a_500_and_the_next_request_is_served(url: str) -> None:
    response = httpx.get(f"{url}/boom")

    assert response.status_code == 500
    assert httpx.get(f"{url}/hello/again").text == "Hello, again!"


def test_websocket_is_refused(url: str) -> None:
    """A WSGI app has no WebSocket: the handshake is answered 403 (closed before it was accepted)."""
    response = httpx.get(
        f"{url}/hello/ws",
        headers={
            "connection": "upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )

    assert response.status_code == 403


def test_plain_wsgi_answer_is_streamed_and_closed() -> None:
    with serve_asgi(WsgiApp(plain_wsgi)) as url:
        answer = httpx.get(f"{url}/chunks")
        closed = httpx.get(f"{url}/closed")
        failed = httpx.get(f"{url}/raise")

    assert answer.text == "one two three"
    assert closed.text.startswith("/chunks")  # closed before the next request was answered
    assert failed.status_code == 500  # what it raised went up to the server


def test_client_leaving_stops_an_endless_answer_and_closes_it() -> None:
    with serve_asgi(WsgiApp(plain_wsgi)) as url:
        with httpx.stream("GET", f"{url}/forever", timeout=10) as response:
            assert next(response.iter_bytes()).startswith(b"tick")

        wait_until(lambda: "/forever" in CLOSED, timeout_s=5, what="the endless answer closed")
