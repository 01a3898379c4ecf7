"""An app service's replica: its app started (lifespan) and the app's frames (HTTP, BODY, WS_*) routed to the request
or WebSocket they belong to. The worker (runtime/worker.py) keeps each one's task with its calls, so CANCEL, the load
it reports and its drain at SHUTDOWN treat them as calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fnserve.apps.asgi import HttpRequest
from fnserve.apps.lifespan import Lifespan
from fnserve.apps.load import ASGIApp
from fnserve.apps.websocket import GOING_AWAY, WebSocketSession


class AppServing:
    """The app of one replica, and its requests and WebSockets in progress by request id."""

    def __init__(self, app: ASGIApp, send_frame: Callable[..., None]) -> None:
        self.app = app
        self.send_frame = send_frame
        self.lifespan = Lifespan(app)
        self.requests: dict[int, HttpRequest] = {}
        self.websockets: dict[int, WebSocketSession] = {}

    async def start(self) -> None:
        """The app's lifespan startup; AppStartupFailed with its message."""
        await self.lifespan.startup()

    async def stop(self) -> None:
        await self.lifespan.shutdown()

    def open_http(self, request_id: int, head: dict[str, Any], body: bytes, more_body: bool) -> asyncio.Task[None]:
        request = HttpRequest(self.app, request_id, head, body, more_body, self.send_frame, self.lifespan.state)
        self.requests[request_id] = request
        task = asyncio.ensure_future(request.run())
        task.add_done_callback(lambda _: self.requests.pop(request_id, None))
        return task

    def body(self, request_id: int, data: bytes, more_body: bool) -> None:
        request = self.requests.get(request_id)
        if request is not None:
            request.feed(data, more_body)

    def acknowledged(self, request_id: int, taken: int) -> None:
        request = self.requests.get(request_id)
        if request is not None:
            request.acknowledged(taken)

    def open_websocket(self, request_id: int, head: dict[str, Any]) -> asyncio.Task[None]:
        session = WebSocketSession(self.app, request_id, head, self.send_frame, self.lifespan.state)
        self.websockets[request_id] = session
        task = session.task = asyncio.ensure_future(session.run())
        task.add_done_callback(lambda _: self.websockets.pop(request_id, None))
        return task

    def ws_message(self, request_id: int, data: str | bytes) -> None:
        session = self.websockets.get(request_id)
        if session is not None:
            session.message(data)

    def ws_close(self, request_id: int, code: int, reason: str) -> None:
        session = self.websockets.get(request_id)
        if session is not None:
            session.close(code, reason)

    def going_away(self) -> None:
        """The replica is stopping: its WebSockets are closed (1001) so that its drain does not wait for them."""
        for session in list(self.websockets.values()):
            session.close(GOING_AWAY, "the replica is stopping")
