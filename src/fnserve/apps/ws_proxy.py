"""An ASGI WebSocket relayed to a command's server (docs/COMMANDS.md): the handshake made to it over HTTP/1.1 (the
client's subprotocols offered, the one it picks accepted), then messages both ways, and the close passed on with its
code and reason, whichever side closes first.

RFC 6455 framing on asyncio streams, standard library only (the replica runtime carries no WebSocket package): our
frames are masked, as a client's must be; its pings are answered; fragmented messages are put together (up to
`MAX_MESSAGE_BYTES`); no extension (compression) is offered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from typing import Any

from fnserve.apps.proxy import HOP_BY_HOP, MAX_HEAD_BYTES, Receive, Scope, Send, forwarded_headers, request_target

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_REFUSED = {"type": "websocket.close", "code": 1011, "reason": "the service's command refused the WebSocket"}


class _Closed(Exception):
    """The command's server closed the WebSocket (or its connection)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


async def relay_websocket(
    host: str, port: int, scope: Scope, receive: Receive, send: Send, *, connect_timeout_s: float = 10.0
) -> None:
    """Relay one ASGI WebSocket to `ws://host:port` until either side closes."""
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        async with asyncio.timeout(connect_timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD_BYTES)
    except (OSError, TimeoutError):
        await send(_REFUSED)
        return
    try:
        subprotocol = await _handshake(reader, writer, scope, f"{host}:{port}".encode())
        if subprotocol is False:
            await send(_REFUSED)
            return
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await _relay(reader, writer, receive, send)
    finally:
        writer.close()


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scope: Scope, host_header: bytes
) -> str | None | bool:
    """The opening handshake with the server: the subprotocol it chose (None: none), or False when it refused."""
    key = base64.b64encode(os.urandom(16))
    dropped = HOP_BY_HOP | {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions"}
    headers = [(name, value) for name, value in forwarded_headers(scope, host_header) if name not in dropped]
    headers += [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", key),
        (b"sec-websocket-version", b"13"),
    ]
    if scope.get("subprotocols") and not any(name == b"sec-websocket-protocol" for name, _ in headers):
        headers.append((b"sec-websocket-protocol", ", ".join(scope["subprotocols"]).encode()))
    head = b"GET %s HTTP/1.1\r\n%s\r\n" % (
        request_target(scope),
        b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers),
    )
    writer.write(head)
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    answered = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        answered[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455 asks for SHA-1: no secrecy in it
    if len(parts) < 2 or parts[1] != b"101" or answered.get(b"sec-websocket-accept") != expected:
        return False
    chosen = answered.get(b"sec-websocket-protocol")
    return chosen.decode("latin-1") if chosen else None


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receive: Receive, send: Send) -> None:
    """Messages both ways until one side closes; the close goes on to the other."""
    from_client = asyncio.ensure_future(_client_to_server(receive, writer))
    from_server = asyncio.ensure_future(_server_to_client(reader, writer, send))
    try:
        await asyncio.wait((from_client, from_server), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (from_client, from_server):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(from_client, from_server, return_exceptions=True)
    if from_server.done() and not from_server.cancelled() and from_server.exception() is None:
        code, reason = from_server.result()
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": code, "reason": reason})


async def _client_to_server(receive: Receive, writer: asyncio.StreamWriter) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.receive":
            if message.get("text") is not None:
                writer.write(_frame(_TEXT, message["text"].encode()))
            else:
                writer.write(_frame(_BINARY, message.get("bytes") or b""))
            await writer.drain()
        elif message["type"] == "websocket.disconnect":
            code = int(message.get("code", 1000))
            code = code if 1000 <= code < 5000 and code not in (1005, 1006, 1015) else 1000
            writer.write(_frame(_CLOSE, code.to_bytes(2, "big") + str(message.get("reason") or "").encode()[:120]))
            with contextlib.suppress(OSError):
                await writer.drain()
            return


async def _server_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send: Send) -> tuple[int, str]:
    """The server's messages to the client; returns the close code and reason it ended with."""
    pieces: list[bytes] = []
    kind = _TEXT
    size = 0
    try:
        while True:
            fin, opcode, payload = await _read_frame(reader)
            if opcode == _PING:
                writer.write(_frame(_PONG, payload))
                continue
            if opcode == _PONG:
                continue
            if opcode == _CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
                writer.write(_frame(_CLOSE, payload[:2]))  # the closing handshake's answer
                return code, payload[2:].decode(errors="replace")
            if opcode != _CONTINUATION:
                kind, pieces, size = opcode, [], 0
            pieces.append(payload)
            size += len(payload)
            if size > MAX_MESSAGE_BYTES:
                return 1009, "message too big"
            if fin:
                data = b"".join(pieces)
                message: dict[str, Any] = {"type": "websocket.send"}
                if kind == _TEXT:
                    message["text"] = data.decode()
                else:
                    message["bytes"] = data
                await send(message)
                pieces, size = [], 0
    except (OSError, asyncio.IncompleteReadError, UnicodeDecodeError):
        return 1011, "the service's command closed its connection"


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    if length > MAX_MESSAGE_BYTES:
        raise asyncio.IncompleteReadError(b"", length)
    mask = await reader.readexactly(4) if second & 0x80 else None
    payload = await reader.readexactly(length)
    return bool(first & 0x80), first & 0x0F, _masked(payload, mask) if mask else payload


def _frame(opcode: int, payload: bytes) -> bytes:
    """One whole frame from a client: FIN, the opcode, the length, a fresh mask, the masked payload."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + _masked(payload, mask)


def _masked(data: bytes, mask: bytes) -> bytes:
    """`data` XOR the repeated 4-byte `mask`, as one big-integer operation rather than a Python loop per byte."""
    if not data:
        return b""
    length = len(data)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")
