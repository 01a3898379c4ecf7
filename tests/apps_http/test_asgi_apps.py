"""A FastAPI app served whole over real HTTP to real replicas: its routes under the prefix (path parameters, its own
422s, its /docs and /openapi.json), its lifespan, streams and Server-Sent Events chunk by chunk, fnserve's token in
front of it, large bodies in parts, a replica lost mid-request."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from fastapi_app import items, public_items

import fnserve as fs
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One server with `items` (token required) and `public-items` deployed: (url, the items token)."""
    with run_server(home=tmp_path_factory.mktemp("apps-home"), graceful_shutdown_s=2) as url:
        with fs.deploy(items, url=url)() as deployment, fs.deploy(public_items, url=url)() as public:
            deployment.wait(timeout_s=30)
            public.wait(timeout_s=30)
            assert deployment.token is not None
            token = deployment.token
        yield url, token


@pytest.fixture
def url(served: tuple[str, str]) -> str:
    return served[0]


@pytest.fixture
def auth(served: tuple[str, str]) -> dict[str, str]:
    return {"authorization": f"Bearer {served[1]}"}


def test_path_parameters_and_query_reach_the_app(url: str, auth: dict[str, str]) -> None:
    response = httpx.get(f"{url}/items/items/42", params={"q": "x"}, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"item_id": 42, "q": "x"}
    assert response.headers["x-request-id"]


@pytest.mark.anyio
async def test_concurrent_requests_each_get_their_own_answer(url: str) -> None:
    """Many requests multiplexed on one replica connection: each answer reaches its own caller."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        responses = await asyncio.gather(*(client.get(f"/public-items/items/{index}") for index in range(64)))

    assert [response.json()["item_id"] for response in responses] == list(range(64))


def test_the_apps_own_validation_error_passes_through(url: str, auth: dict[str, str]) -> None:
    response = httpx.get(f"{url}/items/items/abc", headers=auth)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]  # FastAPI's shape, not fnserve's


def test_the_apps_docs_and_openapi_are_served_under_the_prefix(url: str) -> None:
    docs = httpx.get(f"{url}/public-items/docs")
    spec = httpx.get(f"{url}/public-items/openapi.json")

    assert docs.status_code == 200
    assert "/public-items/openapi.json" in docs.text
    assert spec.status_code == 200
    assert "/items/{item_id}" in spec.json()["paths"]


def test_the_app_sees_its_prefix_as_root_path_and_its_lifespan_state(url: str) -> None:
    echoed = httpx.post(f"{url}/public-items/echo", content=b"abc")
    state = httpx.get(f"{url}/public-items/state")

    assert echoed.json()["root_path"] == "/public-items"
    assert state.json()["greeting"] == "hello from the lifespan"


def test_a_version_pinned_by_path_is_the_apps_root_path(url: str) -> None:
    response = httpx.post(f"{url}/public-items/-/versions/1/echo", content=b"")

    assert response.status_code == 200, response.text
    assert response.json()["root_path"] == "/public-items/-/versions/1"


def test_fnserve_keeps_ping_and_info_under_its_reserved_path(url: str) -> None:
    ping = httpx.get(f"{url}/public-items/-/ping")
    info = httpx.get(f"{url}/public-items/-/info", headers=owner(url))
    apps_own = httpx.get(f"{url}/public-items/ping")

    assert ping.json() == {"status": "healthy"}
    assert info.status_code == 200
    assert info.json()["http_app"] == "asgi"
    assert apps_own.status_code == 404  # the app has no /ping: the path is the app's
    assert "detail" in apps_own.json()


def test_the_clients_info_of_an_app_is_fnserves(url: str) -> None:
    with fs.get_deployment("public-items", url=url) as deployment:
        info = deployment.info()

    assert info["http_app"] == "asgi"
    assert info["app_docs"] == "/public-items/docs"


def test_a_missing_token_is_refused_before_the_app(url: str) -> None:
    response = httpx.get(f"{url}/items/items/1")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_the_token_is_not_passed_to_the_app(url: str, auth: dict[str, str]) -> None:
    response = httpx.post(f"{url}/items/echo", content=b"x", headers=auth)

    assert response.json()["authorization"] is None


def test_a_streaming_response_arrives_chunk_by_chunk(url: str, tmp_path: Path) -> None:
    """1. The app sends its first chunk, then waits for a file.  2. The client reads that chunk while the app waits.
    3. The file appears; the rest follows."""
    gate = tmp_path / "gate"
    with httpx.stream("GET", f"{url}/public-items/stream", params={"count": 3, "gate": str(gate)}) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        assert first == b"chunk 0\n"
        gate.write_text("go")
        rest = b"".join(chunks)

    assert rest == b"chunk 1\nchunk 2\n"


def test_a_large_streamed_answer_arrives_whole_through_the_window(url: str) -> None:
    """The app's answer (24 MiB, 24 times the window) flows as fast as the client takes it."""
    with httpx.stream("GET", f"{url}/public-items/download", params={"mib": 24}, timeout=60) as response:
        hashed = hashlib.sha256()
        size = 0
        for chunk in response.iter_raw():
            hashed.update(chunk)
            size += len(chunk)

    expected = hashlib.sha256(b"".join(bytes([index % 256]) * (256 << 10) for index in range(96)))
    assert size == 24 << 20
    assert hashed.hexdigest() == expected.hexdigest()


def test_a_large_answer_in_one_piece_arrives_whole(url: str) -> None:
    response = httpx.get(f"{url}/public-items/blob", params={"mib": 8}, timeout=60)

    assert response.headers["content-length"] == str(8 << 20)
    assert response.content == bytes(range(256)) * (8 << 12)


def test_server_sent_events_pass_through(url: str) -> None:
    with httpx.stream("GET", f"{url}/public-items/events", params={"count": 3}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    assert lines == ["data: event 0", "data: event 1", "data: event 2"]


def test_a_large_body_reaches_the_app_intact(url: str, auth: dict[str, str]) -> None:
    body = os.urandom(6 << 20)  # over the server's 5 MiB default: the service allows 20 MiB

    response = httpx.post(f"{url}/items/echo", content=body, headers=auth, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["size"] == len(body)
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_body_over_the_apps_limit_is_a_413(url: str) -> None:
    body = b"x" * (6 << 20)  # public-items keeps the server's 5 MiB

    response = httpx.post(f"{url}/public-items/echo", content=body, timeout=30)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_client_that_leaves_cancels_the_apps_work(url: str, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{url}/public-items/sleep", params={"seconds": 30, "marker": str(marker)}, timeout=0.5)

    wait_until(marker.exists, timeout_s=5)
