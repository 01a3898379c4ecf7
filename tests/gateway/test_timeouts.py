"""A call that runs past the server's invocation timeout gets 504, and the replica keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from slow import slow

import fnserve as fs
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def slow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("slow-home")
    with run_server(home=home, graceful_shutdown_s=2, invocation_s=0.2) as url:
        with fs.deploy(slow, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


@pytest.mark.parametrize("path", ["/slow/sleep", "/slow/asleep"])
def test_invoke_returns_504_when_function_exceeds_timeout(slow_url: str, path: str) -> None:
    started = time.monotonic()
    response = httpx.post(slow_url + path, json={"seconds": 1.5}, timeout=10)
    elapsed_s = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "invocation_timeout"
    assert "0.2 s" in response.json()["error"]["message"]
    assert elapsed_s < 2
    assert httpx.post(slow_url + path, json={"seconds": 0}, timeout=10).json() == 0


def test_client_disconnect_cancels_the_call_in_the_replica(server_url: str, tmp_path: Path) -> None:
    """
    1. Call an async endpoint that sleeps 10 s, with a client timeout of 0.5 s.
    2. The client gives up and closes the connection.
    3. The gateway notices the disconnect and cancels the call: the replica's coroutine sees CancelledError.
    """
    marker = tmp_path / "cancelled"
    with fs.deploy(slow, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server_url}/slow/cancellable", json={"seconds": 10, "marker": str(marker)}, timeout=0.5)
    wait_until(marker.exists, timeout_s=5, what="the replica's call to be cancelled")
