"""WebSockets to a FastAPI app through the gateway, with a real client: messages both ways, closed from either side,
refused without a token or to a service that is no app, counted in the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from echo import echo
from fastapi_app import items, public_items
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import fnserve as fs
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One server with `items` (token required), `public-items` and `echo` (no app): (ws url, the items token)."""
    with run_server(home=tmp_path_factory.mktemp("ws-home"), graceful_shutdown_s=2) as url:
        with (
            fs.deploy(items, url=url)() as app,
            fs.deploy(public_items, url=url)() as public,
            fs.deploy(echo, url=url)() as plain,
        ):
            for deployment in (app, public, plain):
                deployment.wait(timeout_s=30)
            assert app.token is not None
            token = app.token
        yield url, token


def ws_url(served: tuple[str, str], path: str) -> str:
    return served[0].replace("http://", "ws://") + path


@pytest.mark.anyio
async def test_messages_go_both_ways_and_the_client_closes(served: tuple[str, str]) -> None:
    async with asyncio.timeout(10), connect(ws_url(served, "/public-items/ws")) as websocket:
        await websocket.send("hello")
        assert await websocket.recv() == "echo: hello"
        await websocket.send(b"\x01\x02\x03")
        assert await websocket.recv() == b"\x03\x02\x01"
    assert websocket.close_code == 1000


@pytest.mark.anyio
async def test_the_app_hears_its_client_close_with_the_code(served: tuple[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    async with asyncio.timeout(10), connect(ws_url(served, f"/public-items/ws?marker={marker}")) as websocket:
        await websocket.send("hi")
        await websocket.recv()
        await websocket.close(code=4002)

    wait_until(marker.exists, timeout_s=5)
    assert marker.read_text() == "4002"


@pytest.mark.anyio
async def test_the_app_closes_with_its_code_and_reason(served: tuple[str, str]) -> None:
    async with asyncio.timeout(10), connect(ws_url(served, "/public-items/ws")) as websocket:
        await websocket.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()

    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked to")


@pytest.mark.anyio
async def test_a_websocket_needs_the_services_token(served: tuple[str, str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(10), connect(ws_url(served, "/items/ws")):
            pass
    token = {"Authorization": f"Bearer {served[1]}"}
    async with asyncio.timeout(10), connect(ws_url(served, "/items/ws"), additional_headers=token) as websocket:
        await websocket.send("with a token")
        assert await websocket.recv() == "echo: with a token"

    assert refused.value.response.status_code == 401
    assert b"unauthenticated" in refused.value.response.body


@pytest.mark.anyio
async def test_a_websocket_to_a_service_without_an_app_or_to_no_service_is_refused(served: tuple[str, str]) -> None:
    for path, status in (("/echo/ws", 404), ("/nowhere/ws", 404), ("/public-items/no-such-route", 403)):
        with pytest.raises(InvalidStatus) as refused:
            async with asyncio.timeout(10), connect(ws_url(served, path)):
                pass
        assert refused.value.response.status_code == status, path


def test_websockets_are_counted(served: tuple[str, str]) -> None:
    async def one() -> None:
        async with connect(ws_url(served, "/public-items/ws")) as websocket:
            await websocket.send("x")
            await websocket.recv()

    asyncio.run(one())
    url = served[0]

    def metrics() -> str:
        return httpx.get(f"{url}/metrics", headers=owner(url)).text

    wait_until(lambda: 'fnserve_websockets_open{service="public-items"} 0' in metrics(), timeout_s=5)
    assert 'fnserve_websockets_total{service="public-items"}' in metrics()
