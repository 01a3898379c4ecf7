"""Test helpers for services: a real server on an ephemeral port, and bounded waits.

    from fnserve.testing import run_server

    def test_hello(tmp_path):
        with run_server(home=tmp_path) as url:
            client = fs.deploy(greeter, url=url)().wait()
            assert client.hello(number=7) == "Hello, world! My favorite number is 7"

This is how fnserve tests itself: real HTTP, real replica processes, nothing mocked. Clients in the same
process find the test server's owner key by its URL; others read it from `<home>/owner.key`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import uvicorn

from fnserve._loop import run as run_on_uvloop
from fnserve.auth import forget_in_process
from fnserve.server import Server, bind_socket, uvicorn_config
from fnserve.settings import Settings, Timeouts

T = TypeVar("T")


@contextlib.contextmanager
def run_server(
    *, home: Path | str, settings: Settings | None = None, startup_timeout_s: float = 30.0, **timeouts: float
) -> Iterator[str]:
    """Run a full fnserve server in a background thread on 127.0.0.1:<ephemeral>; yields its URL.

    Args:
        home: the server's state folder (use pytest's `tmp_path`).
        settings: a base `Settings`; host, port and home are set here.
        startup_timeout_s: how long to wait for it to accept requests.
        **timeouts: overrides of `Timeouts` fields, e.g. `graceful_shutdown_s=2`.

    Replicas are stopped and the socket closed when the block exits, even on failure.
    """
    base = settings or Settings()
    settings = replace(
        base, host="127.0.0.1", port=0, home=Path(home), timeouts=replace(base.timeouts or Timeouts(), **timeouts)
    )
    app = Server(settings)  # first: a home in use (HomeInUse) or unwritable stops here, before any socket is open
    try:
        sock = bind_socket("127.0.0.1", 0)
    except BaseException:
        app.release()
        raise
    port = sock.getsockname()[1]
    config = uvicorn_config(app, settings)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_on_uvloop(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="fnserve-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started or bool(errors) or not thread.is_alive(), timeout_s=startup_timeout_s)
        if errors or not server.started:
            raise RuntimeError(f"fnserve server did not start: {errors[0] if errors else 'startup failed'}")
        app.listening(url)  # clients in this process find the owner key by the URL
        yield url
    finally:
        forget_in_process(url)
        server.should_exit = True
        thread.join(timeout=settings.timeouts.graceful_shutdown_s + 15)
        sock.close()


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 5.0, interval_s: float = 0.01, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail with the last value seen after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout_s:g} s; last value: {last!r}")
        time.sleep(interval_s)
