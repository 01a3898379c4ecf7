"""HTTP limits kept in the protocol, as a request's bytes arrive and before any application code (auth included) sees
it: the head bounded in size and header count, a slow head or body cut off, and a refused connection closed without
losing its answer. `/v1`, the gateway and the internals are all behind it.

uvicorn's httptools protocol keeps whatever a client sends: a 200 MB header line was buffered whole (three such
connections took the server from 101 MB to 792 MB), 5,000 headers were answered 200, and a client sending one byte
a second held its connection, and its memory and file descriptor, forever. Here, per server (`ConnectionGuard`):

- a request line over `max_request_line_bytes` is refused with 414 as its URL arrives; a header line over
  `max_header_line_bytes` or the header past `max_headers` with 431 as it ends; and a head (request line and headers)
  with 431 as soon as more than `max_head_bytes` of it have been read, so the parser never holds more than that
  (plus at most one read, of a head that starts in the read that ends the request before it). Trailers count as a
  head of their own. The answer is the JSON error envelope with `connection: close`;
- a head must arrive whole within `Timeouts.header_read_s` of its first byte (or of the connection's opening), and a
  body must bring 1 KiB, or its end, every `Timeouts.body_idle_s`: otherwise 408. A client that reads nothing of a
  response for `Timeouts.write_idle_s` (the socket's buffer full all along) is dropped. One timer per server checks
  every connection a few times per timeout; no request arms a timer of its own;
- a refused connection is closed the way nginx does it (a "lingering close"): its answer is sent, the server's side
  shut down, and what the client still sends read and dropped for up to `LINGER_S`, so a client still sending is
  not answered by a reset that would discard the answer. A 413 from the apps (`connection: close`) closes the same
  way while its body is still coming.

The cost per request is a few attribute updates and comparisons in the parser callbacks; nothing is allocated for a
request that keeps within the limits.
"""

from __future__ import annotations

import asyncio
import http
import logging
import math
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fnserve.errors import FnserveError, HeadersTooLarge, InvalidRequest, RequestTimeout, UriTooLong
from fnserve.gateway.http import new_request_id
from fnserve.gateway.one_write import OneWriteHttpProtocol, OneWriteTransport
from fnserve.settings import Settings

logger = logging.getLogger("fnserve.http")

# What a connection is doing, as the timer sees it.
_IDLE = 0  # between requests: a response may be on its way; uvicorn's keep-alive timeout closes a quiet one
_HEAD = 1  # reading a request's head
_BODY = 2  # reading a request's body
_CLOSING = 3  # refused: its answer sent, what the client still sends dropped until it closes or LINGER_S pass

# A body that brings less than this within `body_idle_s` is too slow (so is one byte a second).
MIN_BODY_PROGRESS_BYTES = 1024
# How long a refused connection may go on sending before it is closed anyway.
LINGER_S = 2.0


class _Refused(Exception):
    """Raised in a parser callback to stop the parser; the protocol answers with its `error`."""


class ConnectionGuard:
    """One server's request limits, and the timer that cuts off its slow connections: `protocol` is the HTTP protocol
    class for uvicorn that keeps them. Every connection lives on the server's one event loop."""

    def __init__(self, settings: Settings) -> None:
        self.max_request_line_bytes = settings.max_request_line_bytes
        self.max_header_line_bytes = settings.max_header_line_bytes
        self.max_headers = settings.max_headers
        self.max_head_bytes = settings.max_head_bytes
        self.header_read_s = settings.timeouts.header_read_s
        self.body_idle_s = settings.timeouts.body_idle_s
        self.write_idle_s = settings.timeouts.write_idle_s
        # Timeouts are counted in ticks of the timer, a few per timeout; a busy loop makes them later, never sooner.
        timeouts = (self.header_read_s, self.body_idle_s, self.write_idle_s, LINGER_S)
        self.tick_s = min(max(min(s for s in timeouts if s is not None) / 8, 0.01), 1.0)
        self.head_ticks = _ticks(self.header_read_s, self.tick_s)
        self.body_ticks = _ticks(self.body_idle_s, self.tick_s)
        self.write_ticks = _ticks(self.write_idle_s, self.tick_s)
        self.linger_ticks = _ticks(LINGER_S, self.tick_s) or 1
        self.tick = 0
        self.connections: set[GuardedHttpProtocol] = set()
        self._timer: asyncio.TimerHandle | None = None

        class HttpProtocol(GuardedHttpProtocol):
            guard = self

        self.protocol: type[GuardedHttpProtocol] = HttpProtocol

    def watch(self, connection: GuardedHttpProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.connections.add(connection)
        if self._timer is None:
            self._timer = loop.call_later(self.tick_s, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tick += 1
        for connection in tuple(self.connections):
            connection.check(self.tick)
        # The timer runs while there are connections to check.
        self._timer = loop.call_later(self.tick_s, self._check, loop) if self.connections else None


def _ticks(seconds: float | None, tick_s: float) -> int | None:
    return None if seconds is None else math.ceil(seconds / tick_s)


class _LingeringTransport(OneWriteTransport):
    """The connection's transport: a close while the request's body is still coming (an app's 413 with
    `connection: close`) lingers instead, as a refusal does."""

    def close(self) -> None:
        protocol = self.get_protocol()
        if isinstance(protocol, GuardedHttpProtocol) and protocol.lingers_on_close():
            return
        super().close()

    def close_now(self) -> None:
        super().close()


class GuardedHttpProtocol(OneWriteHttpProtocol):
    """uvicorn's HTTP/1.1 protocol (over a `OneWriteTransport`), with its requests kept within the `guard`'s limits."""

    guard: ClassVar[ConnectionGuard]
    transport_class = _LingeringTransport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _HEAD
        self._since = 0  # the tick the current phase (or the body's last KiB) began
        self._unparsed = 0  # bytes read since the parser last got through a head, a body chunk or a request
        self._received = 0  # the current request's body bytes
        self._mark = 0  # `_received` at `_since`
        self._write_stalled = -1  # the tick since which the client has read nothing of a response (-1: it reads)
        self._refusal: FnserveError | None = None

    # -- the connection ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.guard.tick
        self.guard.watch(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.connections.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _CLOSING:
            return  # refused: what still comes is dropped
        self._unset_keepalive_if_required()
        limit = self.guard.max_head_bytes
        unparsed = self._unparsed + len(data)
        if unparsed > limit and self._phase != _BODY:
            self._feed_past_limit(data, limit)
            return
        self._unparsed = unparsed
        self._feed(data)
        if self._unparsed > limit and self._phase != _CLOSING:  # read in a body without it moving on: trailers
            self._refuse(
                HeadersTooLarge(f"the request's trailers are over {limit} bytes; the limit is FNSERVE_MAX_HEAD_BYTES")
            )

    def _feed_past_limit(self, data: bytes, limit: int) -> None:
        """Feed a read that would take a head past `limit`: the part within it, and the rest only if the head (or
        the request) ended in that part."""
        allowed = limit - self._unparsed
        self._unparsed = limit
        if allowed > 0:
            self._feed(data[:allowed])
        if self._phase == _CLOSING or self.transport.is_closing():
            return
        if self._unparsed == limit:  # nothing reset it: the head goes on past its limit
            self._refuse(
                HeadersTooLarge(
                    f"the request's head (request line and headers) is over {limit} bytes; the limit is "
                    "FNSERVE_MAX_HEAD_BYTES"
                )
            )
        else:
            self.data_received(data[allowed:])

    def _feed(self, data: bytes) -> None:
        """uvicorn's `data_received`, answering its refusals (and malformed requests) with the error envelope."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.guard.connections.discard(self)  # another protocol has the connection now
                self._phase = _IDLE
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._refuse(self._refusal or InvalidRequest(f"malformed HTTP request: {exc}"))

    def _reject(self, error: FnserveError) -> None:
        """Stop the parser, from inside one of its callbacks, and answer `error`."""
        self._refusal = error
        raise _Refused

    # -- parser callbacks: uvicorn's, called by class (no `super()` object made per call), with the limits --------

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self._phase != _HEAD:  # a new connection's head is timed from its opening
            self._phase = _HEAD
            self._since = self.guard.tick

    def on_url(self, url: bytes) -> None:
        HttpToolsProtocol.on_url(self, url)
        if len(self.url) > self.guard.max_request_line_bytes:
            self._reject(
                UriTooLong(
                    f"the request line is over {self.guard.max_request_line_bytes} bytes; the limit is "
                    "FNSERVE_MAX_REQUEST_LINE_BYTES (send long inputs in the body, or as assets)"
                )
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        guard = self.guard
        if len(name) + len(value) > guard.max_header_line_bytes:
            self._reject(
                HeadersTooLarge(
                    f"the request's header {name[:40].decode('latin-1')!r} is {len(name) + len(value)} bytes long; "
                    f"the limit is {guard.max_header_line_bytes} (FNSERVE_MAX_HEADER_LINE_BYTES)"
                )
            )
        if len(self.headers) >= guard.max_headers:
            self._reject(
                HeadersTooLarge(
                    f"the request has more than {guard.max_headers} headers; the limit is FNSERVE_MAX_HEADERS"
                )
            )
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._since = self.guard.tick
        self._unparsed = self._received = self._mark = 0
        HttpToolsProtocol.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        self._received += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._unparsed = 0
        HttpToolsProtocol.on_message_complete(self)

    # -- timing out and refusing ----------------------------------------------------------------------------------

    def check(self, tick: int) -> None:
        """The guard's timer: cut off a head or a body that is too slow, drop a client that does not read its
        response, close a refused connection that lingers."""
        phase = self._phase
        guard = self.guard
        if not self.flow.write_paused:
            self._write_stalled = -1
        elif self._write_stalled < 0:
            self._write_stalled = tick
        elif guard.write_ticks is not None and tick - self._write_stalled >= guard.write_ticks:
            logger.info(
                "Connection [%s] dropped: it read nothing of its response in %g s",
                _peer(self.client),
                guard.write_idle_s,
            )
            self.transport.abort()  # no answer can reach a client that does not read
            return
        if phase == _IDLE:
            return
        if phase == _CLOSING:
            if tick - self._since >= guard.linger_ticks:
                self._transport().close_now()
            return
        if self.flow.read_paused or (phase == _BODY and self.cycle.waiting_for_100_continue):
            # The server is not reading (its app is busy with what it has), or the client waits for its go-ahead.
            self._since, self._mark = tick, self._received
        elif phase == _HEAD:
            if guard.head_ticks is not None and tick - self._since >= guard.head_ticks:
                if self.cycle is None and self._unparsed == 0:  # not a byte yet: nothing to answer
                    self._transport().close_now()
                else:
                    self._refuse(
                        RequestTimeout(
                            f"the request's head did not arrive within {guard.header_read_s:g} s; send it whole "
                            "(FNSERVE_HEADER_READ_TIMEOUT_S)"
                        )
                    )
        elif self._received - self._mark >= MIN_BODY_PROGRESS_BYTES:
            self._since, self._mark = tick, self._received
        elif guard.body_ticks is not None and tick - self._since >= guard.body_ticks:
            self._refuse(
                RequestTimeout(
                    f"the request body brought less than {MIN_BODY_PROGRESS_BYTES} bytes in {guard.body_idle_s:g} s; "
                    "send it faster (FNSERVE_BODY_IDLE_TIMEOUT_S)"
                )
            )

    def lingers_on_close(self) -> bool:
        """Whether a close should linger (and now does): the current request's body is still coming."""
        if self._phase != _BODY or self.transport.is_closing():
            return False
        self._linger(shut=True)
        return True

    def _refuse(self, error: FnserveError) -> None:
        """Answer `error`, unless a response is already on its way, and close the connection, lingering."""
        if self._phase == _CLOSING or self.transport.is_closing():
            return
        logger.info("Request refused [%s]: %s", _peer(self.client), error.message)
        cycle = self.cycle
        shut = True
        if self._phase == _BODY and cycle is not None:  # the request being read has an app running
            answer = not cycle.response_started
            if not cycle.response_complete:  # its app stops: receive() says the client left, and sends are dropped
                cycle.disconnected = True
                cycle.message_event.set()
        elif cycle is None or cycle.response_complete:
            answer = True
        else:  # a pipelined request: the response to the one before is on its way; it ends the connection
            answer = shut = False
            cycle.keep_alive = False
        if answer:
            self.transport.write(self._answer(error))
        self._linger(shut=shut)

    def _linger(self, *, shut: bool) -> None:
        self._phase = _CLOSING
        self._since = self.guard.tick
        self.flow.resume_reading()  # to drop what comes, rather than leave it unread (a reset)
        if shut and self.transport.can_write_eof():
            self.transport.write_eof()  # sends what is held first; the client reads the answer, then the end

    def _answer(self, error: FnserveError) -> bytes:
        request_id = new_request_id()
        body = error.to_json(request_id)
        lines = [f"HTTP/1.1 {error.http_status} {http.HTTPStatus(error.http_status).phrase}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"x-request-id: " + request_id.encode(),
            b"connection: close",
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _transport(self) -> _LingeringTransport:
        assert isinstance(self.transport, _LingeringTransport)
        return self.transport


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"
