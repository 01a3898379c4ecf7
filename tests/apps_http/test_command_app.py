"""CommandApp under a real uvicorn, with a real child process (tests/apps/http_server.py): requests forwarded both
ways with streamed bodies, connections kept alive, a command that exits or never turns healthy failing the startup
with its output, one that exits while serving, and no child left behind by a shutdown or a SIGKILLed replica."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _asgi_server import serve_asgi
from _processes import is_gone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from fnserve.apps.command import CommandApp
from fnserve.testing import wait_until

APPS = Path(__file__).parent.parent / "apps"
SERVER = f"{sys.executable} http_server.py --port {{port}}"
PREFIX = "/svc"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = CommandApp(SERVER, health_uri="/health", cwd=APPS)
    with serve_asgi(app, root_path=PREFIX) as served:
        yield served


def test_request_is_forwarded_with_its_path_query_headers_and_body(url: str) -> None:
    response = httpx.post(f"{url}/v1/echo/a%20b", params={"x": "1"}, content=b"hello", headers={"x-custom": "yes"})

    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/v1/echo/a%20b"  # after the route prefix, as the client sent it
    assert body["query"] == "x=1"
    assert body["size"] == 5
    assert body["x_custom"] == "yes"
    assert body["forwarded_prefix"] == PREFIX
    assert body["host"].startswith("127.0.0.1:")
    assert response.headers["x-served-by"].isdigit()
    assert "transfer-encoding" not in response.headers or response.headers["transfer-encoding"] == "chunked"


def test_status_of_the_command_is_kept(url: str) -> None:
    response = httpx.get(f"{url}/nowhere")

    assert response.status_code == 404
    assert response.json() == {"error": "no route /nowhere"}


def test_chunked_answer_streams_event_by_event(url: str) -> None:
    with httpx.stream("GET", f"{url}/stream", params={"count": 3, "pause_s": 1.0}, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        chunks = response.iter_text()
        first = next(chunks)
        first_at = time.monotonic()
        rest = "".join(chunks)
        last_at = time.monotonic()

    assert first == "data: event 0\n\n"
    assert last_at - first_at > 1.5  # the last came about two pauses after the first: streamed, not buffered
    assert (first + rest).count("data: event") == 3


def test_large_bodies_stream_both_ways(url: str) -> None:
    """A 3 MiB upload with no length (chunked all the way to the command) and a 3 MB answer with a length."""
    payload = os.urandom(3 * 1024 * 1024)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 100_000):
            yield payload[start : start + 100_000]

    uploaded = httpx.post(f"{url}/upload", content=pieces(), timeout=30)
    downloaded = httpx.get(f"{url}/big", params={"size": 3_000_000}, timeout=30)

    assert uploaded.json()["size"] == len(payload)
    assert downloaded.headers["content-length"] == "3000000"
    assert downloaded.content == bytes(range(256)) * (3_000_000 // 256) + bytes(3_000_000 % 256)


def test_client_leaving_a_long_stream_stops_forwarding_it(url: str) -> None:
    """A client reads the first event of a long stream and leaves: the forwarding stops (its connection to the
    command is dropped, not reused), and the next calls are answered."""
    with httpx.stream("GET", f"{url}/stream", params={"count": 1000, "pause_s": 0.05}, timeout=10) as response:
        assert next(response.iter_text()).startswith("data: event 0")

    assert httpx.get(f"{url}/whoami", timeout=5).status_code == 200
    assert httpx.get(f"{url}/stream", params={"count": 2}, timeout=5).text.count("data: event") == 2


def test_connections_to_the_command_are_kept_alive(url: str) -> None:
    """Calls one after another reach the command over the same connection (one client port)."""
    ports = {httpx.get(f"{url}/whoami").json()["client_port"] for _ in range(5)}

    assert len(ports) == 1


# -- startup failures, an exit while serving, shutdown ------------------------------------------------------------


async def run_lifespan(app: CommandApp, *, shutdown: bool = True) -> list[dict[str, Any]]:
    """Drive `app`'s ASGI lifespan as a server would: startup, then (if it started) shutdown; the messages it sent."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))
        if message["type"] == "lifespan.startup.complete" and shutdown:
            await incoming.put({"type": "lifespan.shutdown"})

    await incoming.put({"type": "lifespan.startup"})
    async with asyncio.timeout(20):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    return sent


def test_command_that_exits_at_once_fails_the_startup_with_its_exit_code_and_output() -> None:
    app = CommandApp(f"{SERVER} --mode exit", cwd=APPS)

    (failed,) = asyncio.run(run_lifespan(app))

    assert failed["type"] == "lifespan.startup.failed"
    message = failed["message"]
    assert message.startswith("the command exited with code 3 before GET /health answered 2xx")
    assert "http_server.py --port " in message  # the command line, with its port
    assert "cannot load the weights from /models/missing.bin" in message


def test_command_that_never_turns_healthy_fails_the_startup_and_is_stopped() -> None:
    app = CommandApp(f"{SERVER} --mode unhealthy", cwd=APPS, startup_timeout_s=1.0)

    started = time.monotonic()
    (failed,) = asyncio.run(run_lifespan(app))

    assert time.monotonic() - started < 8
    assert failed["type"] == "lifespan.startup.failed"
    assert "did not answer GET /health with 2xx within 1 s (last: status 503)" in failed["message"]
    assert "still warming up" in failed["message"]
    assert app.process is not None
    assert app.process.returncode is not None


def test_command_that_cannot_be_found_fails_the_startup() -> None:
    app = CommandApp("no-such-server-binary --port {port}")

    (failed,) = asyncio.run(run_lifespan(app))

    assert "exited with code 127" in failed["message"]
    assert "not found" in failed["message"]


def test_fixed_inference_port_and_port_variable() -> None:
    """`inference_port` fixes the port; the command may read it from $PORT instead of `{port}`."""
    port = _free_port()
    app = CommandApp(f"{sys.executable} http_server.py", inference_port=port, cwd=APPS)

    with serve_asgi(app) as url:
        assert httpx.get(f"{url}/whoami").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"healthy": True}


def test_command_exiting_while_serving_calls_on_exit_with_its_code() -> None:
    exits: list[tuple[int, str]] = []
    app = CommandApp(SERVER, cwd=APPS, on_exit=lambda code, message: exits.append((code, message)))

    with serve_asgi(app) as url:
        pid = httpx.get(f"{url}/whoami").json()["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: exits, timeout_s=10, what="on_exit")

    ((code, message),) = exits
    assert code in (-signal.SIGKILL, 128 + signal.SIGKILL)  # the server itself, or the shell that started it
    assert message.startswith(f"Command [pid {app.process.pid if app.process else 0}] ")
    assert message.endswith(" while serving; the replica stops so that it is replaced")


def test_shutdown_stops_the_command_and_what_it_started() -> None:
    """The command starts a grandchild that ignores SIGTERM: the group is SIGKILLed after stop_timeout_s."""
    script = f"trap '' TERM; sleep 60 & echo $! > sleeper.pid; exec {SERVER}"
    app = CommandApp(script, cwd=APPS, stop_timeout_s=0.5)
    pid_file = APPS / "sleeper.pid"
    try:
        with serve_asgi(app) as url:
            server_pid = httpx.get(f"{url}/whoami").json()["pid"]
            sleeper_pid = int(pid_file.read_text())
        assert wait_until(lambda: is_gone(server_pid) and is_gone(sleeper_pid), timeout_s=5, what="the group gone")
    finally:
        pid_file.unlink(missing_ok=True)


HOLDER = """
import asyncio, sys
from pathlib import Path
from fnserve.apps.command import CommandApp

async def main():
    app = CommandApp(sys.argv[1], cwd=Path(sys.argv[2]))
    await app.start()
    print("command pid", app.process.pid, file=sys.stderr, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_command_is_stopped_when_its_replica_is_killed() -> None:
    """
    1. A process (standing in for a replica) starts the command and prints its pid.
    2. That process is SIGKILLed: no shutdown runs in it.
    3. The reaper stops the command within its grace time.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, SERVER, str(APPS)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert holder.stderr is not None
        command_pid = next(int(line.split()[-1]) for line in holder.stderr if line.startswith(b"command pid"))
        assert not is_gone(command_pid)
        holder.kill()
        holder.wait(timeout=5)
        assert wait_until(lambda: is_gone(command_pid), timeout_s=10, what="the command stopped")
    finally:
        holder.kill()
        holder.wait(timeout=5)
        if holder.stderr is not None:
            holder.stderr.close()


def _free_port() -> int:
    from fnserve.apps.command import free_port

    return free_port()


# -- WebSockets -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_url() -> Iterator[str]:
    app = CommandApp(f"{sys.executable} ws_server.py --port {{port}}", cwd=APPS)
    with serve_asgi(app, root_path=PREFIX) as served:
        yield served.replace("http://", "ws://")


@pytest.mark.anyio
async def test_websocket_messages_go_both_ways_with_the_chosen_subprotocol(ws_url: str) -> None:
    async with asyncio.timeout(10), connect(f"{ws_url}/ws", subprotocols=[Subprotocol("echo.v1")]) as websocket:
        assert websocket.subprotocol == "echo.v1"
        await websocket.send("hello")
        assert await websocket.recv() == "echo: hello at /ws"
        await websocket.send(b"\x01\x02\x03")
        assert await websocket.recv() == b"\x03\x02\x01"
        await websocket.send("big")
        assert await websocket.recv() == bytes(range(256)) * 1024  # a 256 KiB frame (64-bit length)
    assert websocket.close_code == 1000


@pytest.mark.anyio
async def test_websocket_closed_by_the_command_passes_its_code_on(ws_url: str) -> None:
    async with asyncio.timeout(10), connect(f"{ws_url}/ws") as websocket:
        assert websocket.subprotocol is None
        await websocket.send("close")
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 4001
    assert websocket.close_reason == "asked to"


@pytest.mark.anyio
async def test_websocket_the_command_does_not_take_is_refused(ws_url: str) -> None:
    with pytest.raises(InvalidStatus):
        async with asyncio.timeout(10), connect(f"{ws_url}/nowhere"):
            pass
