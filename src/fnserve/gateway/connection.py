"""The server's end of one replica's connection: calls multiplexed by request id over one socket.

A `ReplicaConnection` is made for every worker that connects to the replica socket; the worker's
first frame (HELLO) says which replica it is, and `ReplicaListener` hands it to whoever waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from fnserve.composition.credentials import credentials_match
from fnserve.composition.multiplex import MODEL_ID_KEY
from fnserve.errors import FnserveError, InvocationTimeout, ReplicaCrashed, error_from_code
from fnserve.gateway.exchange import STREAM_END as _STREAM_END
from fnserve.gateway.exchange import Exchange
from fnserve.gateway.http import ClientDisconnected
from fnserve.gateway.streamed_upload import StreamedUpload
from fnserve.responses import Response, from_frame
from fnserve.runtime.protocol import FrameReader, FrameWriter, Kind, ProtocolError, widen_send_buffer

logger = logging.getLogger("fnserve.gateway")


class InitFailed(Exception):
    """The replica's initializer raised (or the replica died before it finished)."""

    def __init__(self, message: str, traceback_tail: str) -> None:
        super().__init__(message)
        self.message = message
        self.traceback_tail = traceback_tail


@dataclass(frozen=True)
class HealthReport:
    """A replica's answer to a ping: its calls in progress and, when the service has `check_health()`, its result."""

    load: int
    passed: bool = True
    message: str | None = None  # why the check failed


class HandleSink(Protocol):
    """Where a replica's own calls to other services go (gateway/handle_calls.py)."""

    def frame(self, caller: ReplicaConnection, message: list[Any]) -> None: ...

    def lost(self, caller: ReplicaConnection) -> None: ...


class ReplicaConnection(asyncio.Protocol):
    """Sends CALLs, resolves RESULT/ERROR, feeds CHUNKs to streams, and fails everything pending on loss."""

    def __init__(self, on_hello: Callable[[ReplicaConnection, str, int, str], None]) -> None:
        self._on_hello = on_hello
        self._reader = FrameReader()
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[bytes | Response]] = {}
        self._streams: dict[int, asyncio.Queue[Any]] = {}  # streams', and exchanges' queues (exchange.py)
        self._exchanges: dict[int, Exchange] = {}  # requests passed through to an app, and WebSockets
        self._pings: dict[int, asyncio.Future[tuple[int, bool]]] = {}  # PONG: load, whether a HEALTH follows
        self._checks: dict[int, asyncio.Future[tuple[bool, str | None]]] = {}  # HEALTH: passed, message
        self._writer: FrameWriter | None = None
        self.transport: asyncio.Transport | None = None
        self._peer_gone = False  # EOF seen: the transport closes right after, and connection_lost comes later still
        self.label = "replica"
        self.in_flight = 0
        loop = asyncio.get_running_loop()
        # READY's api dict, or InitFailed: kept here because READY may arrive in the same read as HELLO.
        self.initialized: asyncio.Future[dict[str, Any]] = loop.create_future()
        # A replica that dies before anyone awaits `initialized` must not log "exception never retrieved".
        self.initialized.add_done_callback(lambda future: future.cancelled() or future.exception())
        # Set when the server stops the replica on purpose: what callers cut off by it are told.
        self.stopped_because: str | None = None
        # Called the moment the connection drops, before any request can pick this replica again.
        self.on_lost: Callable[[], None] | None = None
        # Called when a call or stream ends: one of this replica's slots is free for a request that waits.
        self.on_release: Callable[[], None] | None = None
        # Called with (endpoint index, size, wait_s) for each batch a batched endpoint starts (BATCH frames).
        self.on_batch: Callable[[int, int, float], None] | None = None
        # Multiplexed models (composition/multiplex.py): what the replica last reported it holds (MODELS), its loads
        # and evictions so far, and the calls in flight to it by model id (while the first one loads it).
        self.multiplexed = False  # it sent MODELS: its service has `@fs.multiplexed` loaders
        self.models: tuple[str, ...] = ()
        self.model_loads = 0
        self.model_evictions = 0
        self.model_calls: dict[str, int] = {}
        # Handle calls (composition/): set once the replica proved who it is at HELLO; the supervisor says which
        # service it serves and which services that one may call.
        self.handles: HandleSink | None = None
        self.service_name: str | None = None
        self.uses: frozenset[str] = frozenset()

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        widen_send_buffer(transport)
        self._writer = FrameWriter(self.transport)

    def eof_received(self) -> bool | None:
        # The replica closed its end (it exited, or was killed). Leave the ready list now: connection_lost runs only
        # in a later loop iteration, and a call that picked this replica in between could not be sent.
        self._peer_gone = True
        if self.on_lost is not None:
            self.on_lost()
        return None  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        crash = ReplicaCrashed(
            self.stopped_because
            or f"{self.label} died while handling the request; it is being replaced, so retrying may succeed"
        )
        for future in self._calls.values():
            if not future.done():
                future.set_exception(crash)
        for queue in self._streams.values():
            queue.put_nowait(crash)
        for exchange in self._exchanges.values():
            exchange.closed = True
            exchange.acknowledged(0)  # a sender waiting for room wakes, and meets the crash when it sends
        waiters: list[asyncio.Future[Any]] = [*self._pings.values(), *self._checks.values()]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(crash)
        if not self.initialized.done():
            self.initialized.set_exception(InitFailed("the replica exited before its initializer finished", ""))
        if self.handles is not None:
            self.handles.lost(self)
        self._calls.clear()
        self._pings.clear()
        self._checks.clear()
        if self.on_lost is not None:
            self.on_lost()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._reader.feed(data)
        except ProtocolError as exc:
            logger.error("%s sent a bad frame (%s); closing its connection", self.label, exc)
            assert self.transport is not None
            self.transport.close()
            return
        for message in messages:
            self._dispatch(message)

    def _dispatch(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == Kind.RESULT:
            future = self._calls.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result(message[2])
        elif kind == Kind.MEDIA:
            future = self._calls.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result(from_frame(*message[2:6]))
        elif kind == Kind.CHUNK:
            queue = self._streams.get(message[1])
            if queue is not None:
                queue.put_nowait(message[2])
        elif kind == Kind.END:
            queue = self._streams.pop(message[1], None)
            if queue is not None:
                queue.put_nowait(_STREAM_END)
        elif kind == Kind.ERROR:
            error = error_from_code(message[2], message[3], message[4])
            future = self._calls.pop(message[1], None)
            if future is not None and not future.done():
                future.set_exception(error)
            queue = self._streams.pop(message[1], None)
            if queue is not None:
                queue.put_nowait(error)
        elif kind == Kind.PONG:
            ping = self._pings.pop(message[1], None)
            if ping is not None and not ping.done():
                ping.set_result((message[2], len(message) > 3 and bool(message[3])))
        elif kind == Kind.HEALTH:
            check = self._checks.pop(message[1], None)
            if check is not None and not check.done():
                check.set_result((bool(message[2]), message[3]))
        elif kind == Kind.START or kind == Kind.WS_MESSAGE or kind == Kind.WS_ACCEPT or kind == Kind.WS_CLOSE:
            queue = self._streams.get(message[1])
            if queue is not None:
                queue.put_nowait((_TAGS[kind], *message[2:]))
        elif kind == Kind.BODY_ACK:
            exchange = self._exchanges.get(message[1])
            if exchange is not None:
                exchange.acknowledged(message[2])
        elif kind == Kind.BATCH:
            if self.on_batch is not None:
                self.on_batch(message[1], message[2], message[3])
        elif kind == Kind.MODELS:
            self.multiplexed = True
            self.models = tuple(message[1])
            self.model_loads, self.model_evictions = message[2], message[3]
        elif kind == Kind.HELLO:
            self._on_hello(self, message[1], message[2], message[3] if len(message) > 3 else "")
        elif kind == Kind.READY and not self.initialized.done():
            self.initialized.set_result(message[1])
        elif kind == Kind.INIT_FAILED and not self.initialized.done():
            self.initialized.set_exception(InitFailed(message[1], message[2]))
        elif (kind == Kind.HANDLE_CALL or kind == Kind.CANCEL) and self.handles is not None:
            self.handles.frame(self, message)

    # -- calls ------------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self._peer_gone and not self.transport.is_closing()

    def _send(self, *message: Any) -> None:
        if not self.is_open or self._writer is None:
            raise ReplicaCrashed(f"{self.label} is not connected; it is being replaced, so retrying may succeed")
        self._writer.send(*message)

    def reserve(self) -> None:
        """Take a slot now for a call made a little later (`call(..., reserved=True)`)."""
        self.in_flight += 1

    def unreserve(self) -> None:
        """Give back a reserved slot whose call was never made."""
        self.in_flight -= 1
        if self.on_release is not None:
            self.on_release()

    async def call(
        self,
        endpoint_index: int,
        body: bytes,
        path: dict[str, str],
        query: dict[str, Any],
        timeout_s: float | None,
        *,
        context: dict[str, Any] | None = None,
        reserved: bool = False,
        upload: StreamedUpload | None = None,
    ) -> bytes | Response:
        """One non-streaming call: JSON bytes, or a `Response` for an answer that is not JSON. Cancelling the awaiting
        task cancels the call in the replica.

        `context` tells the replica about the call (its job, its asset files); `reserved`: its slot was taken
        with `reserve()`; `upload`: a large body sent after the CALL as it arrives (gateway/streamed_upload.py),
        whose problems (413, a malformed form, the client leaving) end the call."""
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | Response] = loop.create_future()
        model_id = None
        try:
            if context is None:
                self._send(Kind.CALL, request_id, endpoint_index, body, path, query)
            else:
                self._send(Kind.CALL, request_id, endpoint_index, body, path, query, context)
                model_id = self._hold_model(context)
        except BaseException:
            if reserved:
                self.unreserve()
            raise
        self._calls[request_id] = future
        if not reserved:
            self.in_flight += 1
        # A plain timer rather than asyncio.timeout(): cheaper, and this runs once per request.
        timer = None if timeout_s is None else loop.call_later(timeout_s, self._expire, request_id, timeout_s)
        pump = None if upload is None else asyncio.ensure_future(self._send_upload(request_id, upload, future))
        try:
            return await future
        finally:
            if pump is not None:
                pump.cancel()
                self._exchanges.pop(request_id, None)
            self.in_flight -= 1
            if model_id is not None:
                self._drop_model(model_id)
            if self.on_release is not None:
                self.on_release()
            if timer is not None:
                timer.cancel()
            if self._calls.pop(request_id, None) is not None and self.is_open:
                self._send(Kind.CANCEL, request_id)

    async def _send_upload(self, request_id: int, upload: StreamedUpload, future: asyncio.Future[Any]) -> None:
        """Send a call's upload in BODY frames within the window, then wait for the client to leave."""
        window = self._exchanges[request_id] = Exchange(self, request_id)
        try:
            await upload.send(window.send_body)
            await upload.wait_disconnect()
            raise ClientDisconnected
        except (FnserveError, ClientDisconnected) as exc:
            if not future.done():
                future.set_exception(exc)

    def _hold_model(self, context: dict[str, Any]) -> str | None:
        """Count a call for a multiplexed model while it is in flight: the replica holds or loads that model."""
        model_id: str | None = context.get(MODEL_ID_KEY)
        if model_id is not None:
            self.model_calls[model_id] = self.model_calls.get(model_id, 0) + 1
        return model_id

    def _drop_model(self, model_id: str) -> None:
        left = self.model_calls[model_id] - 1
        if left:
            self.model_calls[model_id] = left
        else:
            del self.model_calls[model_id]

    def _expire(self, request_id: int, timeout_s: float) -> None:
        future = self._calls.pop(request_id, None)
        if future is None or future.done():
            return
        future.set_exception(
            InvocationTimeout(
                f"the call did not finish within {timeout_s:g} s and was cancelled; make the function faster "
                "or submit it as a job"
            )
        )
        if self.is_open:
            self._send(Kind.CANCEL, request_id)

    async def stream(
        self,
        endpoint_index: int,
        body: bytes,
        path: dict[str, str],
        query: dict[str, Any],
        context: dict[str, Any] | None = None,
    ) -> AsyncIterator[list[bytes]]:
        """A streaming call: yields the chunks that have arrived, in order, as soon as there are any (several at once
        when the replica is ahead, so the caller writes them in one go). Closing early cancels it."""
        request_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        model_id = None
        if context is None:
            self._send(Kind.CALL, request_id, endpoint_index, body, path, query)
        else:
            self._send(Kind.CALL, request_id, endpoint_index, body, path, query, context)
            model_id = self._hold_model(context)
        self._streams[request_id] = queue
        self.in_flight += 1
        try:
            item = await queue.get()
            while True:
                batch = []
                while item is not _STREAM_END and not isinstance(item, FnserveError):
                    batch.append(item)
                    if queue.empty():
                        item = None
                        break
                    item = queue.get_nowait()
                if batch:
                    yield batch
                if item is _STREAM_END:
                    return
                if isinstance(item, FnserveError):
                    raise item
                item = await queue.get()
        finally:
            self.in_flight -= 1
            if model_id is not None:
                self._drop_model(model_id)
            if self.on_release is not None:
                self.on_release()
            if self._streams.pop(request_id, None) is not None and self.is_open:
                self._send(Kind.CANCEL, request_id)

    def open_exchange(self, kind: Kind, head: dict[str, Any], *body: Any) -> Exchange:
        """Start a request passed through to the app (HTTP, with its body's first part and whether more follows) or a
        WebSocket (WS_OPEN); it takes a slot until `Exchange.close()`."""
        request_id = next(self._ids)
        self._send(kind, request_id, head, *body)
        exchange = Exchange(self, request_id)
        self._streams[request_id] = exchange.queue
        self._exchanges[request_id] = exchange
        self.in_flight += 1
        return exchange

    def send_frame(self, *message: Any) -> None:
        """A frame of an exchange that is under way (a body part, a WebSocket message)."""
        self._send(*message)

    def end_exchange(self, exchange: Exchange, *, cancel: bool = True) -> None:
        if self._exchanges.pop(exchange.request_id, None) is None:
            return
        exchange.closed = True
        self.in_flight -= 1
        if self.on_release is not None:
            self.on_release()
        if self._streams.pop(exchange.request_id, None) is not None and cancel and self.is_open:
            self._send(Kind.CANCEL, exchange.request_id)

    async def ping(self, timeout_s: float) -> HealthReport:
        """Health check. TimeoutError when the replica does not answer within `timeout_s` (it is stuck: its loop
        does not run), ReplicaCrashed when it is gone. A service's `check_health()` gets `timeout_s` more to return;
        one that takes longer is a failed check."""
        ping_id = next(self._ids)
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[tuple[int, bool]] = loop.create_future()
        checked: asyncio.Future[tuple[bool, str | None]] = loop.create_future()
        # Both wait from the start: the HEALTH frame may come in the same read as the PONG.
        self._pings[ping_id] = answered
        self._checks[ping_id] = checked
        try:
            self._send(Kind.PING, ping_id)
            async with asyncio.timeout(timeout_s):
                load, checking = await answered
            if not checking:
                return HealthReport(load)
            try:
                async with asyncio.timeout(timeout_s):
                    passed, message = await checked
            except TimeoutError:
                return HealthReport(load, False, f"check_health() did not return within {timeout_s:g} s")
            return HealthReport(load, passed, message)
        finally:
            self._pings.pop(ping_id, None)
            self._checks.pop(ping_id, None)
            if not checked.done():
                checked.cancel()
            elif not checked.cancelled():
                checked.exception()  # a lost connection failed it too; it is retrieved here, not logged

    def shutdown(self) -> None:
        """Ask the replica to finish its calls in progress and exit."""
        with contextlib.suppress(ReplicaCrashed):
            self._send(Kind.SHUTDOWN)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


_TAGS = {Kind.START: "start", Kind.WS_ACCEPT: "accept", Kind.WS_MESSAGE: "message", Kind.WS_CLOSE: "close"}


class ReplicaListener:
    """The Unix socket every worker connects back to; routes each connection to the replica expecting it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._expecting: dict[str, tuple[asyncio.Future[tuple[ReplicaConnection, int]], str]] = {}
        self._server: asyncio.AbstractServer | None = None
        self.handles: HandleSink | None = None  # given to each replica's connection once its HELLO is checked

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: ReplicaConnection(self._hello), self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def expect(self, replica_id: str, credential: str) -> asyncio.Future[tuple[ReplicaConnection, int]]:
        """The connection of the replica started as `replica_id` with `credential` (its HELLO must carry it)."""
        future: asyncio.Future[tuple[ReplicaConnection, int]] = asyncio.get_running_loop().create_future()
        self._expecting[replica_id] = (future, credential)
        return future

    def forget(self, replica_id: str) -> None:
        self._expecting.pop(replica_id, None)

    def _hello(self, connection: ReplicaConnection, replica_id: str, pid: int, credential: str) -> None:
        expected = self._expecting.get(replica_id)
        if expected is None or expected[0].done():
            logger.warning("Replica [%s pid=%s] connected but nobody expects it; closing", replica_id, pid)
            connection.close()
            return
        if not credentials_match(credential, expected[1]):  # left expected: the real replica may still connect
            logger.warning("Replica [%s pid=%s] connected without its credential; closing", replica_id, pid)
            connection.close()
            return
        del self._expecting[replica_id]
        connection.handles = self.handles
        expected[0].set_result((connection, pid))
