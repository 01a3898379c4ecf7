"""One WebSocket to the app in the replica: `receive` gives `websocket.connect`, then the client's messages and
its close (WS_MESSAGE, WS_CLOSE frames); `send` turns the app's accept, messages and close into frames.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from typing import Any

from fnserve.apps.asgi import scope_from_head
from fnserve.apps.load import ASGIApp, Message
from fnserve.runtime.protocol import Kind

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
# How long an app may take to return once its client closed, before its task is cancelled.
CLOSE_GRACE_S = 5.0


class WebSocketSession:
    """One WebSocket: `run()` calls the app; `message()` and `close()` hand it what the client sent."""

    def __init__(
        self,
        app: ASGIApp,
        request_id: int,
        head: dict[str, Any],
        send_frame: Callable[..., None],
        state: dict[str, Any],
    ) -> None:
        self.app = app
        self.request_id = request_id
        self.scope = scope_from_head("websocket", head, state)
        self.send_frame = send_frame
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.accepted = False
        self.closed = False  # either side closed: the app's later sends are dropped
        self.task: asyncio.Task[None] | None = None

    def message(self, data: str | bytes) -> None:
        self.inbox.put_nowait(
            {"type": "websocket.receive", "text": data}
            if isinstance(data, str)
            else {"type": "websocket.receive", "bytes": data}
        )

    def close(self, code: int, reason: str) -> None:
        """The client closed (or the replica is stopping: 1001, and the gateway is told too)."""
        if code == GOING_AWAY and not self.closed:
            self.send_frame(Kind.WS_CLOSE, self.request_id, GOING_AWAY, "the replica is stopping")
        self.closed = True
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self.task is not None:  # it hears the close and returns; one that goes on is cancelled
            asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.task.cancel)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.closed:
            return
        if kind == "websocket.accept":
            self.accepted = True
            headers = [[bytes(name), bytes(value)] for name, value in message.get("headers", ())]
            self.send_frame(Kind.WS_ACCEPT, self.request_id, message.get("subprotocol"), headers)
        elif kind == "websocket.send":
            text = message.get("text")
            self.send_frame(Kind.WS_MESSAGE, self.request_id, text if text is not None else bytes(message["bytes"]))
        elif kind == "websocket.close":
            self.closed = True
            code = int(message.get("code") or NORMAL_CLOSURE)
            self.send_frame(Kind.WS_CLOSE, self.request_id, code, str(message.get("reason") or ""))

    async def run(self) -> None:
        code = NORMAL_CLOSURE
        try:
            await self.app(self.scope, self.inbox.get, self.send)
        except asyncio.CancelledError:
            raise  # the gateway ended it: nobody listens
        except Exception:
            traceback.print_exc()
            code = INTERNAL_ERROR
        if not self.closed:  # returned (or failed) without closing: closed for it, as servers do
            self.closed = True
            self.send_frame(Kind.WS_CLOSE, self.request_id, code, "")
