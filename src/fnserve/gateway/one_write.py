"""HTTP responses written once per loop pass: uvicorn's httptools protocol over a transport that holds what a
connection writes until the event loop has run everything that was ready.

uvicorn writes the head of a response as soon as it starts and the body with the next message: two `send`
calls, two TCP segments and two reads for the client, per response, and each written the moment it is made.
`OneWriteTransport` holds a connection's writes until the end of the loop's current pass and sends them in one
`send`. Besides the saved system call, the server then answers in batches: it finishes every callback that was
ready (replica results, requests read) before its answers go out, so the next poll finds more work at once.
In an interleaved A/B run on the 2-core machine (no-op, wrk, one replica, three rounds) it served 7.5k–8.5k
req/s at 16 connections against 4.6k–5.0k for uvicorn's own protocol; writing head and body together but at
once gave no gain. Latency at one connection stayed within the noise (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Writes held from this size on go out as they are, side by side, rather than joined into one buffer first.
LARGE_WRITE_BYTES = 64 * 1024


class OneWriteTransport(asyncio.Transport):
    """A socket transport whose writes wait for the end of the loop's current pass, then go as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)
        self._held_bytes += len(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        large = self._held_bytes >= LARGE_WRITE_BYTES
        self._held = []
        self._held_bytes = 0
        if self._transport.is_closing():
            return
        if len(held) == 1:
            self._transport.write(held[0])
        elif large:  # a big body is not copied to be joined to its head: uvloop sends the pieces with one writev
            self._transport.writelines(held)
        else:
            self._transport.write(b"".join(held))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._transport.abort()

    # Everything else is the socket's own transport.

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools), its responses written through a `OneWriteTransport`."""

    transport_class: ClassVar[type[OneWriteTransport]] = OneWriteTransport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(self.transport_class(transport, self.loop))
