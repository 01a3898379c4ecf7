"""An app service's replicas: its lifespan's failure is the deploy's, a factory's app scaled to zero starts on the
next request, a replica lost mid-request answers replica_crashed, a slow app answers invocation_timeout, and
`fnserve deploy app.py:app` serves a module's app."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _cli import fnserve
from _deploy import deploy_failure, deployed
from fastapi_app import broken_lifespan, lazy_items, public_items
from websockets.asyncio.client import connect

from fnserve.settings import Settings, Timeouts
from fnserve.testing import run_server, wait_until


def test_a_failing_lifespan_startup_fails_the_deploy_with_its_message(server_url: str) -> None:
    failed = deploy_failure(broken_lifespan, server_url, match="cannot reach the database")

    assert "startup failed" in failed.message


def test_a_factory_scaled_to_zero_starts_a_replica_for_the_next_request(server_url: str) -> None:
    """1. Deploy the factory with min_replicas=0: it idles down to no replica.  2. A request starts one, and the app
    it made answers."""
    with deployed(lazy_items, server_url) as deployment:
        wait_until(lambda: deployment.refresh()._info["replicas_ready"] == 0, timeout_s=15)

        response = httpx.get(f"{server_url}/lazy_items/items/7", timeout=30)

    assert response.status_code == 200, response.text
    assert response.json() == {"item_id": 7, "q": None}


def test_a_replica_killed_mid_request_answers_replica_crashed(server_url: str) -> None:
    """1. A request waits in the app.  2. Its replica is SIGKILLed.  3. The caller gets replica_crashed, and a new
    replica serves the next request."""
    with deployed(public_items, server_url), ThreadPoolExecutor(1) as pool:
        pid = httpx.get(f"{server_url}/public-items/state").json()["pid"]
        waiting = pool.submit(httpx.get, f"{server_url}/public-items/sleep", params={"seconds": 30}, timeout=30)
        time.sleep(0.3)  # the request reaches the app (a sleep here only widens the window; either way it is cut)
        os.kill(pid, signal.SIGKILL)
        response = waiting.result()
        wait_until(lambda: httpx.get(f"{server_url}/public-items/state").status_code == 200, timeout_s=20)
        new_pid = httpx.get(f"{server_url}/public-items/state").json()["pid"]

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "replica_crashed"
    assert new_pid != pid


def test_an_app_slower_than_the_invocation_timeout_answers_504(tmp_path: Path) -> None:
    settings = Settings(timeouts=dataclasses.replace(Timeouts(), invocation_s=0.5))
    with (
        run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url,
        deployed(public_items, url),
    ):
        started = time.monotonic()
        response = httpx.get(f"{url}/public-items/sleep", params={"seconds": 10}, timeout=30)

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "invocation_timeout"
    assert time.monotonic() - started < 5


def test_cli_deploys_a_modules_fastapi_app(server_url: str, tmp_path: Path) -> None:
    app_file = tmp_path / "api.py"
    app_file.write_text(
        textwrap.dedent(
            """
            from fastapi import FastAPI

            app = FastAPI()

            @app.get("/hello/{name}")
            def hello(name: str) -> dict[str, str]:
                return {"hello": name}
            """
        )
    )

    done = fnserve("deploy", f"{app_file}:app", url=server_url)

    assert done.returncode == 0, done.stderr + done.stdout
    assert "every path under" in done.stdout
    token = re.search(r"Token\s+(fst_\S+)", done.stdout)
    assert token is not None, done.stdout
    response = httpx.get(f"{server_url}/app/hello/world", headers={"authorization": f"Bearer {token[1]}"})
    assert response.json() == {"hello": "world"}


def test_a_websocket_starts_a_replica_of_an_app_scaled_to_zero(server_url: str) -> None:
    async def echo_once() -> object:
        async with asyncio.timeout(30), connect(server_url.replace("http://", "ws://") + "/lazy_items/ws") as ws:
            await ws.send("wake up")
            return await ws.recv()

    with deployed(lazy_items, server_url) as deployment:
        wait_until(lambda: deployment.refresh()._info["replicas_ready"] == 0, timeout_s=15)

        assert asyncio.run(echo_once()) == "echo: wake up"
