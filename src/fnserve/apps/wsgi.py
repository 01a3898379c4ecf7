"""`WsgiApp`: a WSGI app (Flask, Django's WSGI handler, Bottle...) served as an ASGI3 app, so a replica runs it the way
it runs an ASGI app. Standard library only: the replica runtime stays small.

Each request runs in a thread of a bounded pool with a full PEP 3333 environ: `SCRIPT_NAME` is the ASGI `root_path`
(the service's route prefix), so the app's `url_for` builds URLs that work through the gateway. The body is read from
the ASGI receive stream as the app reads `wsgi.input`: a body that came in one message (nearly all) costs the thread
no trip to the loop, a large one is pulled a message at a time and never held whole. The response goes out chunk by
chunk as the app's iterable yields (so streamed and SSE responses stream), the iterable's `close()` is called
always, and a client that goes away stops the iteration. What the app raises goes up, as an ASGI app's would. Lifespan
is a no-op (WSGI has none); WebSockets are refused.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WsgiApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WsgiApp:
    """An ASGI3 app that runs `app`, a WSGI app, in a pool of `max_threads` threads.

    Example:
        >>> from flask import Flask
        >>> asgi_app = WsgiApp(Flask(__name__), max_threads=8)  # then served like any ASGI app
    """

    def __init__(self, app: WsgiApplication, *, max_threads: int = 8) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fnserve-wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect; closing before accepting refuses it (the client sees a 403)
            await send({"type": "websocket.close", "code": 1000, "reason": "a WSGI app takes no WebSocket"})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        first = await receive()  # the whole body, most of the time: the thread then never waits on the loop for it
        body = WsgiInput(loop, receive, first)
        exchange = Exchange(loop, send)
        environ = build_environ(scope, body)
        watchers: list[asyncio.Task[None]] = []
        if body.complete:  # nothing else reads `receive`: once the answer streams, it may tell us the client left
            exchange.on_streaming = lambda: watchers.append(asyncio.ensure_future(_watch_disconnect(receive, exchange)))
        try:
            await loop.run_in_executor(self.pool, exchange.run, self.app, environ)
        except BaseException:
            exchange.stopped.set()  # cancelled (the caller left) or failed: the thread stops at its next chunk
            raise
        finally:
            exchange.on_streaming = None
            for watcher in watchers:
                watcher.cancel()
        await exchange.finish()


async def _watch_disconnect(receive: Receive, exchange: Exchange) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    exchange.stopped.set()


def build_environ(scope: Scope, body: WsgiInput) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI HTTP scope. Strings are "native" as PEP 3333 wants them: the request's bytes
    decoded as latin-1 (a UTF-8 path arrives as its UTF-8 bytes, which Werkzeug and Django decode back)."""
    root_path = scope.get("root_path", "")
    path = scope["path"]
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :]  # ASGI servers put the root path in `path`; WSGI keeps it apart in SCRIPT_NAME
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode().decode("latin-1"),
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,  # it ends where the body ends: a chunked body (no length) is read too
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        if key in environ:  # a repeated header: one value, as a proxy would fold it
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


class WsgiInput:
    """`wsgi.input`: the request body, read in the app's thread, pulled from the ASGI receive stream on the loop a
    message at a time when it did not all come in the first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, first: Message) -> None:
        self.loop = loop
        self.receive = receive
        self.buffer = bytearray(first.get("body", b"") if first["type"] == "http.request" else b"")
        self.complete = first["type"] != "http.request" or not first.get("more_body", False)

    def _pull(self) -> bool:
        """One more message into the buffer; False at the end of the body (or when the client went away)."""
        if self.complete:
            return False
        message = asyncio.run_coroutine_threadsafe(self._receive(), self.loop).result()
        if message["type"] != "http.request":
            self.complete = True
            return False
        self.buffer += message.get("body", b"")
        self.complete = not message.get("more_body", False)
        return True

    async def _receive(self) -> Message:
        return await self.receive()

    def _take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._pull():
                pass
            return self._take(len(self.buffer))
        while len(self.buffer) < size and self._pull():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = None if size is None or size < 0 else size
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0 and (limit is None or end < limit):
                return self._take(end + 1)
            if limit is not None and len(self.buffer) >= limit:
                return self._take(limit)
            if not self._pull():
                return self._take(len(self.buffer) if limit is None else limit)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class Exchange:
    """The response side of one request, driven from the app's thread: `start_response`, `write`, and the iterable's
    chunks sent on the loop as they come (the head goes with the first non-empty chunk, as PEP 3333 asks)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self.loop = loop
        self.send = send
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False  # the head went out: the status can no longer change
        self.stopped = threading.Event()
        # Called on the loop when a second chunk comes (the answer streams); a one-chunk answer costs no watcher.
        self.on_streaming: Callable[[], None] | None = None
        self._streaming = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response() was called a second time without exc_info")
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return self.write

    def write(self, data: bytes) -> None:
        if self.status is None:
            raise AssertionError("the WSGI app wrote its body before it called start_response()")
        if not data or self.stopped.is_set():
            return
        messages: list[Message] = []
        if not self.started:
            messages.append({"type": "http.response.start", "status": self.status, "headers": self.headers})
            self.started = True
        elif not self._streaming:
            self._streaming = True
            if self.on_streaming is not None:
                self.loop.call_soon_threadsafe(self._start_watching)
        messages.append({"type": "http.response.body", "body": bytes(data), "more_body": True})
        try:
            asyncio.run_coroutine_threadsafe(self._send_all(messages), self.loop).result()
        except Exception:  # the connection went away under us: nothing more to send to
            self.stopped.set()

    def _start_watching(self) -> None:
        if self.on_streaming is not None:  # None once the request is over
            self.on_streaming()

    async def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self.send(message)

    def run(self, app: WsgiApplication, environ: dict[str, Any]) -> None:
        """In the pool's thread: call the app and send what its iterable yields; `close()` it whatever happens. What
        the app raises goes up to the ASGI server (in a replica: `500 function_error` before the head was sent, the
        connection cut after)."""
        iterable = app(environ, self.start_response)
        try:
            for chunk in iterable:
                self.write(chunk)
                if self.stopped.is_set():
                    break
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    async def finish(self) -> None:
        """On the loop, after the app's thread is done: the end of the body (with the head, when no chunk had any)."""
        if not self.started:
            if self.status is None:
                raise RuntimeError("the WSGI app returned without calling start_response()")
            self.started = True
            await self.send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if not self.stopped.is_set():
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
