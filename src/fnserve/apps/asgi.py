"""One HTTP request to the app in the replica: its ASGI scope rebuilt from the HTTP frame's head, `receive` fed
by the BODY frames (acknowledged as the app takes them, so the gateway never has more than a window in flight), and
`send` turning `http.response.start`/`body` into START, CHUNK and END frames (waiting while a window of them is not
taken by the client yet).
"""

from __future__ import annotations

import asyncio
import collections
import traceback
from collections.abc import Callable
from typing import Any

from fnserve.apps.load import ASGIApp, Message, Scope
from fnserve.runtime.invoke import function_error
from fnserve.runtime.protocol import ACK_BYTES, BODY_FRAME_BYTES, BODY_WINDOW_BYTES, Kind

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def scope_from_head(kind: str, head: dict[str, Any], state: dict[str, Any]) -> Scope:
    """An ASGI scope (http or websocket) from what the gateway sent (gateway/passthrough.py `request_head`)."""
    path: str = head["path"]
    client = head.get("client")
    scope: Scope = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": head.get("http_version", "1.1"),
        "scheme": head.get("scheme", "http"),
        "path": path,
        "raw_path": head.get("raw_path") or path.encode(),
        "root_path": head.get("root_path", ""),
        "query_string": head.get("query_string", b""),
        "headers": [(bytes(name), bytes(value)) for name, value in head["headers"]],
        "client": tuple(client) if client else None,
        "server": None,
        "state": dict(state),
        "extensions": {},
    }
    if kind == "http":
        scope["method"] = head["method"]
    else:
        scope["subprotocols"] = list(head.get("subprotocols", ()))
    return scope


class HttpRequest:
    """One request: `run()` calls the app; `feed()` hands it the body's parts as BODY frames bring them."""

    def __init__(
        self,
        app: ASGIApp,
        request_id: int,
        head: dict[str, Any],
        body: bytes,
        more_body: bool,
        send_frame: Callable[..., None],
        state: dict[str, Any],
    ) -> None:
        self.app = app
        self.request_id = request_id
        self.scope = scope_from_head("http", head, state)
        self.send_frame = send_frame
        self.parts: collections.deque[tuple[bytes, bool]] = collections.deque([(body, more_body)])
        self.arrived = asyncio.Event()
        self.arrived.set()
        self.body_done = False
        self.unacked = 0  # bytes the app took that the gateway has not been told of
        self.started = False
        self.ended = False  # END sent
        self.sent_unacked = 0  # bytes of the answer the client has not taken yet, as far as the gateway said
        self.room = asyncio.Event()
        self.room.set()
        self.finished = asyncio.Event()  # the response ended, or the app returned

    def feed(self, data: bytes, more_body: bool) -> None:
        self.parts.append((data, more_body))
        self.arrived.set()

    def acknowledged(self, taken: int) -> None:
        """The gateway's BODY_ACK: the client took this many more bytes of the answer."""
        self.sent_unacked -= taken
        if self.sent_unacked < BODY_WINDOW_BYTES:
            self.room.set()

    async def receive(self) -> Message:
        if self.body_done:  # as servers do: after the body, `receive` answers when the client is gone
            await self.finished.wait()
            return {"type": "http.disconnect"}
        while not self.parts:
            self.arrived.clear()
            await self.arrived.wait()
        data, more = self.parts.popleft()
        if not more:
            self.body_done = True
        self.unacked += len(data)
        if self.unacked >= ACK_BYTES or (not more and self.unacked):
            self.send_frame(Kind.BODY_ACK, self.request_id, self.unacked)
            self.unacked = 0
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the app sent http.response.start twice")
            self.started = True
            headers = [[bytes(name), bytes(value)] for name, value in message.get("headers", ())]
            self.send_frame(Kind.START, self.request_id, int(message["status"]), headers)
        elif kind == "http.response.body":
            if not self.started or self.ended:
                raise RuntimeError("the app sent http.response.body before its start, or after its end")
            body = memoryview(message.get("body", b""))
            for offset in range(0, len(body), BODY_FRAME_BYTES):  # a large body in frames, each within the window
                while self.sent_unacked >= BODY_WINDOW_BYTES:  # a slow client: the app waits, as behind a socket
                    self.room.clear()
                    await self.room.wait()
                piece = bytes(body[offset : offset + BODY_FRAME_BYTES])
                self.send_frame(Kind.CHUNK, self.request_id, piece)
                self.sent_unacked += len(piece)
            if not message.get("more_body", False):
                self.ended = True
                self.finished.set()
                self.send_frame(Kind.END, self.request_id)

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise  # the client left, or the call timed out: nobody waits for an answer
        except Exception as exc:
            traceback.print_exc()  # the replica's log keeps the app's traceback
            if not self.ended:
                error = function_error(exc)
                self.send_frame(Kind.ERROR, self.request_id, error.code, error.message, None)
            return
        finally:
            self.finished.set()
        if not self.ended:
            what = "did not finish its response" if self.started else "returned without sending a response"
            self.send_frame(Kind.ERROR, self.request_id, "function_error", f"the app {what}", None)
