"""`Upstream`: ASGI HTTP requests forwarded to a server on this machine (a service's command) and its answers streamed
back, over a small HTTP/1.1 client on asyncio streams that keeps connections alive between requests.

Written here rather than on h11 or httpx: the replica runtime (envs/runtime.py) carries neither, and a proxy to one
known local server needs only HTTP/1.1's framing (a head, then a body by length, by chunks or until close), a few
lines on a `StreamReader`; its speed against h11 is not measured. Bodies stream both ways, a piece at a time, so an
upload or an SSE answer is never held whole; a small answer (a length up to 64 KiB) goes out in one message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, quote_from_bytes

from fnserve.errors import CommandUnreachable, FnserveError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers about one connection, not the message (RFC 9110 §7.6.1): never forwarded, either way.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
PIECE_BYTES = 65_536  # what is read and sent at a time; a body with a length up to this goes out in one message
MAX_HEAD_BYTES = 65_536
_NO_BODY_STATUSES = (204, 304)
_PATH_SAFE = "/%!$&'()*+,;=:@~-._"


class UpstreamError(Exception):
    """The server could not be reached, or broke off its answer."""


class _ClientGone(Exception):
    """The client went away before its request was whole."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Upstream:
    """Forwards requests to `http://{host}:{port}`, keeping up to `max_idle` connections open for the next ones.

    `connect_timeout_s` bounds each new connection; an answer may take as long as the gateway lets the call run
    (its own timeout cancels the forwarding and closes the connection).
    """

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 10.0, max_idle: int = 32) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self.idle: list[_Connection] = []
        self.host_header = f"{host}:{port}".encode()

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc or type(exc).__name__}") from None
        return _Connection(reader, writer)

    async def _take(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        return await self._connect()

    def _give_back(self, connection: _Connection) -> None:
        if len(self.idle) < self.max_idle and connection.usable():
            self.idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI HTTP request with the upstream server's answer; a 502 in the error envelope when it cannot
        be reached (or breaks off before its head)."""
        first = await receive()
        if first["type"] != "http.request":
            return  # the client left before sending anything
        try:
            await self._exchange(scope, receive, send, first)
        except _ClientGone:
            return
        except UpstreamError as exc:
            await send_error(send, CommandUnreachable(f"the service's command did not answer: {exc}"))

    async def _exchange(self, scope: Scope, receive: Receive, send: Send, first: Message) -> None:
        method = scope["method"].encode()
        replayable = not first.get("more_body", False)
        connection = await self._take()
        try:
            try:
                await self._send_request(connection, scope, receive, first)
                status, headers, version = await _read_head(connection.reader)
            except (OSError, asyncio.IncompleteReadError, UpstreamError):
                if not (connection.reused and replayable):
                    raise
                # A kept-alive connection the server had closed meanwhile: once more, on a new one.
                connection.close()
                connection = await self._connect()
                await self._send_request(connection, scope, receive, first)
                status, headers, version = await _read_head(connection.reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            connection.close()
            raise
        try:
            reusable = await self._send_response(connection, method, status, headers, version, receive, send)
        except BaseException:
            connection.close()
            raise
        if reusable:
            self._give_back(connection)
        else:
            connection.close()

    async def _send_request(self, connection: _Connection, scope: Scope, receive: Receive, first: Message) -> None:
        writer = connection.writer
        body: bytes = first.get("body", b"")
        more = bool(first.get("more_body", False))
        headers = forwarded_headers(scope, self.host_header)
        given_length = any(name == b"content-length" for name, _ in headers)
        chunked = more and not given_length
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif not more:
            headers = [(name, value) for name, value in headers if name != b"content-length"]
            if body or given_length or scope["method"] in ("POST", "PUT", "PATCH"):
                headers.append((b"content-length", str(len(body)).encode()))
        head = b"%s %s HTTP/1.1\r\n%s\r\n" % (
            scope["method"].encode(),
            request_target(scope),
            b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers),
        )
        writer.write(head + (_chunk(body) if chunked else body))
        while more:
            await writer.drain()
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone  # in the middle of its body
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            writer.write(_chunk(body) if chunked else body)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _send_response(
        self,
        connection: _Connection,
        method: bytes,
        status: int,
        headers: list[tuple[bytes, bytes]],
        version: bytes,
        receive: Receive,
        send: Send,
    ) -> bool:
        """Stream the answer's body to `send`; whether the connection may serve another request."""
        reader = connection.reader
        connection_tokens = {
            token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")
        }
        reusable = version == b"HTTP/1.1" and b"close" not in connection_tokens
        transfer = b"".join(value for name, value in headers if name == b"transfer-encoding").lower()
        length_values = [value for name, value in headers if name == b"content-length"]
        dropped = HOP_BY_HOP | connection_tokens
        out_headers = [(name, value) for name, value in headers if name not in dropped]
        start = {"type": "http.response.start", "status": status, "headers": out_headers}
        if method == b"HEAD" or status in _NO_BODY_STATUSES:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return reusable
        pieces: AsyncIterator[bytes]
        if b"chunked" in transfer:
            pieces = _chunked_pieces(reader)
        elif length_values:
            try:
                length = int(length_values[0])
                if length <= PIECE_BYTES:  # the usual small answer: one message
                    body = await reader.readexactly(length)
                else:
                    body = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                raise UpstreamError(f"its answer broke off: {type(exc).__name__}: {exc}") from None
            if body is not None:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return reusable
            pieces = _length_pieces(reader, length)
        else:
            pieces, reusable = _pieces_until_close(reader), False
        await send(start)
        # A streamed answer may never end (SSE): a client that goes away stops it. (Only here: a small answer is
        # sent whole, and a replica's request task is cancelled anyway when its caller leaves.)
        task = asyncio.current_task()
        assert task is not None
        streaming = True
        gone = asyncio.ensure_future(_disconnected(receive))

        def stop(done: asyncio.Future[Message]) -> None:
            if streaming and not done.cancelled():
                task.cancel()

        gone.add_done_callback(stop)
        try:
            async for piece in pieces:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except asyncio.CancelledError:
            if gone.done() and not gone.cancelled():
                task.uncancel()
                raise _ClientGone from None
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, UpstreamError) as exc:
            # The head is out: the answer cannot become a 502 any more, the client's connection is cut instead.
            raise RuntimeError(f"the service's server broke off its answer: {type(exc).__name__}: {exc}") from None
        finally:
            streaming = False
            gone.cancel()
        await send({"type": "http.response.body", "body": b""})
        return reusable


async def _disconnected(receive: Receive) -> Message:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


def request_target(scope: Scope) -> bytes:
    """The path after the route prefix (the ASGI `root_path`), as the client sent it, with its query."""
    root = quote(scope.get("root_path", "")).encode()
    # What is already percent-encoded stays so; a byte a request line cannot carry (a space, UTF-8) is encoded.
    raw = quote_from_bytes(scope.get("raw_path") or scope["path"].encode(), safe=_PATH_SAFE).encode()
    if root and (raw == root or raw.startswith(root + b"/")):
        raw = raw[len(root) :] or b"/"
    query = scope.get("query_string", b"")
    return raw + b"?" + query if query else raw


def forwarded_headers(scope: Scope, host_header: bytes) -> list[tuple[bytes, bytes]]:
    """The request's headers less those about its connection, with `Host` naming the upstream server and the
    `X-Forwarded-*` headers saying where the request came in (the prefix lets the server build its own URLs)."""
    headers = scope.get("headers", ())
    connection_tokens = {
        token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")
    }
    dropped = HOP_BY_HOP | connection_tokens | {b"host"}
    out = [(name, value) for name, value in headers if name not in dropped]
    original_host = next((value for name, value in headers if name == b"host"), None)
    out.append((b"host", host_header))
    if original_host is not None:
        out.append((b"x-forwarded-host", original_host))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    client = scope.get("client")
    if client:
        out.append((b"x-forwarded-for", str(client[0]).encode()))
    if scope.get("root_path"):
        out.append((b"x-forwarded-prefix", scope["root_path"].encode()))
    return out


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer's status, headers (names lowercased) and HTTP version; interim answers (100 Continue) skipped."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers, parts[0]


async def _length_pieces(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining:
        piece = await reader.read(min(remaining, PIECE_BYTES))
        if not piece:
            raise UpstreamError(f"the answer ended {remaining} bytes short of its content-length")
        remaining -= len(piece)
        yield piece


async def _chunked_pieces(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, dropped
                pass
            return
        async for piece in _length_pieces(reader, size):
            yield piece
        await reader.readexactly(2)


async def _pieces_until_close(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while piece := await reader.read(PIECE_BYTES):
        yield piece


async def send_error(send: Send, error: FnserveError) -> None:
    """An answer in fnserve's error envelope, from inside a replica's app."""
    body = error.to_json()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    with contextlib.suppress(Exception):  # the client may be gone already
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
