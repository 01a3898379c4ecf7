"""An ASGI app served by a real uvicorn on an ephemeral port, in a thread: for the ASGI apps of fnserve.apps, tested
before (and apart from) a replica running them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from fnserve._loop import run as run_on_uvloop
from fnserve.server import bind_socket
from fnserve.testing import wait_until


@contextlib.contextmanager
def serve_asgi(app: Any, *, root_path: str = "") -> Iterator[str]:
    """Serve `app` (lifespan on) until the block exits; yields its URL. Fails if its lifespan startup fails.
    `root_path`: what the app is mounted at (as a service's route prefix), given to it in each scope."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2, root_path=root_path)
    )
    thread = threading.Thread(target=lambda: run_on_uvloop(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout_s=20, what="uvicorn to start")
        if not server.started:
            raise RuntimeError("the app's lifespan startup failed (see the log above)")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
