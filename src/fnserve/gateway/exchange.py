"""The gateway's end of one exchange with a replica that is more than a call: a request passed through to an app
(its body sent in parts, its answer's head, chunks and end coming back) or a WebSocket (messages both ways). A large
upload's body, sent after its CALL, uses an exchange's window too.

What the replica sends for it lands in one queue, in order (`ReplicaConnection` files it there, as it does a stream's
chunks); what the gateway sends goes out at once, except body parts, which wait while `BODY_WINDOW_BYTES` are sent
and not yet acknowledged.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fnserve.errors import FnserveError
from fnserve.runtime.protocol import ACK_BYTES, BODY_FRAME_BYTES, BODY_WINDOW_BYTES, Kind

if TYPE_CHECKING:
    from fnserve.gateway.connection import ReplicaConnection

# Put in an exchange's (or a stream's) queue by the replica's END: nothing more comes.
STREAM_END: Any = object()


class Exchange:
    """One pass-through request or WebSocket on a replica connection; `close()` ends it (and cancels it in the
    replica when it has not ended), and gives its slot back."""

    __slots__ = ("_room", "_taken", "_unacked", "closed", "connection", "queue", "request_id")

    def __init__(self, connection: ReplicaConnection, request_id: int) -> None:
        self.connection = connection
        self.request_id = request_id
        # bytes (CHUNK), ("start", status, headers), ("accept", subprotocol, headers), ("message", data),
        # ("close", code, reason), STREAM_END, or an FnserveError (the replica's ERROR, or its loss)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._unacked = 0
        self._taken = 0  # bytes of the answer the client took that the replica has not been told of
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False

    async def next_items(self) -> list[Any]:
        """What has arrived, in order, waiting for at least one item."""
        items = [await self.queue.get()]
        queue = self.queue
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    async def send_body(self, data: bytes, more_body: bool, *extra: Any) -> None:
        """Send a part of the request body, in frames of at most `BODY_FRAME_BYTES`, each once the replica has room
        for it; `extra` goes at the end of each frame (an upload's form part: gateway/streamed_upload.py).
        ReplicaCrashed when the replica is gone."""
        view = memoryview(data)
        offset = 0
        while True:
            piece = bytes(view[offset : offset + BODY_FRAME_BYTES])
            offset += len(piece)
            last = offset >= len(data)
            while self._unacked >= BODY_WINDOW_BYTES and not self.closed:
                self._room.clear()
                await self._room.wait()
            self.connection.send_frame(Kind.BODY, self.request_id, piece, more_body or not last, *extra)
            self._unacked += len(piece)
            if last:
                return

    def acknowledged(self, consumed: int) -> None:
        """The replica's BODY_ACK: `consumed` more bytes are taken, so as many more may be sent."""
        self._unacked -= consumed
        if self._unacked < BODY_WINDOW_BYTES:
            self._room.set()

    def taken(self, size: int) -> None:
        """The client took `size` more bytes of the answer: the replica may send as many more (BODY_ACK)."""
        self._taken += size
        if self._taken >= ACK_BYTES and self.connection.is_open:
            self.connection.send_frame(Kind.BODY_ACK, self.request_id, self._taken)
            self._taken = 0

    def send_message(self, data: str | bytes) -> None:
        self.connection.send_frame(Kind.WS_MESSAGE, self.request_id, data)

    def send_close(self, code: int, reason: str) -> None:
        self.connection.send_frame(Kind.WS_CLOSE, self.request_id, code, reason)

    def lost(self, error: FnserveError) -> None:
        """The replica's connection dropped: whoever reads or waits for room learns it."""
        self.queue.put_nowait(error)
        self.closed = True
        self._room.set()

    def close(self, *, cancel: bool = True) -> None:
        """End it here; `cancel=False` lets the replica's side end by itself (a WebSocket whose client closed: the
        app hears it and returns, apps/websocket.py)."""
        self.connection.end_exchange(self, cancel=cancel)
