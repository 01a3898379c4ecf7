"""Large uploads to `bytes`/`fs.File` parameters, streamed to the replica in parts instead of held whole.

A body that ends within its first `STREAM_FROM_BYTES` goes whole in its CALL, as before (one frame, nothing spooled).
A larger one is sent as it arrives, after a CALL whose context says so (uploads.UPLOAD_KEY), in BODY frames within
the exchange window (gateway/exchange.py): a raw body as it is; a multipart form parsed here, its file parts' bytes
sent on (a frame with [name, content_type, filename] where each begins) and its fields sent in the last frame. The
replica spools them (runtime/spool.py) and calls the endpoint once the last part arrived; it validates the fields
(422 naming one). The endpoint's `max_body_bytes` is counted here as parts arrive (413).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fnserve.gateway.http import Receive, body_chunks
from fnserve.gateway.multipart import StreamedForm, feed, form_parser

# A body larger than this is streamed to the replica; a smaller one goes whole in its CALL.
STREAM_FROM_BYTES = 1 << 20

SendBody = Callable[..., Awaitable[None]]


class StreamedUpload:
    """The rest of one large upload: `send(send_body)` sends what was read and what arrives, until its end.

    `form_files`: the endpoint's file parameters, for a multipart body (None: a raw body)."""

    def __init__(
        self, receive: Receive, parts: list[bytes], limit: int, content_type: bytes, form_files: list[str] | None
    ) -> None:
        self.receive = receive
        self.parts = parts
        self.limit = limit
        self.form = None if form_files is None else StreamedForm(frozenset(form_files))
        self.parser = None if self.form is None else form_parser(content_type, self.form)

    async def send(self, send_body: SendBody) -> None:
        received = sum(map(len, self.parts))
        for part in self.parts:
            await self._send(send_body, part)
        self.parts = []
        async for chunk in body_chunks(self.receive, self.limit, received=received):
            await self._send(send_body, chunk)
        if self.form is None:
            await send_body(b"", False)
            return
        assert self.parser is not None
        feed(self.parser, None)
        await self._send_events(send_body)
        await send_body(b"", False, None, self.form.fields)

    async def _send(self, send_body: SendBody, chunk: bytes) -> None:
        if self.form is None:
            await send_body(chunk, True)
            return
        assert self.parser is not None
        feed(self.parser, chunk)
        await self._send_events(send_body)

    async def _send_events(self, send_body: SendBody) -> None:
        assert self.form is not None
        events, self.form.events = self.form.events, []
        for data, header in events:
            if header is not None:
                await send_body(b"", True, header)
            elif data:
                await send_body(data, True)

    async def wait_disconnect(self) -> None:
        """After the body: return when the client leaves."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return
