"""An app's ASGI lifespan in the replica: its startup runs before the replica says READY (a failure is the
replica's INIT_FAILED, with the app's message), its shutdown when the server stops the replica.

As uvicorn's `lifespan="auto"`: an app that raises before answering the first lifespan message does not speak the
lifespan protocol, and is served without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from fnserve.apps.load import ASGIApp, Message

# How long an app's shutdown may take before the replica exits anyway (the server kills it later still).
SHUTDOWN_TIMEOUT_S = 10.0


class AppStartupFailed(Exception):
    """The app's lifespan startup failed; the message is the app's."""


class Lifespan:
    """One app's lifespan: `startup()`, then `shutdown()`. `state` is what the app keeps in it, copied into each
    request's scope (ASGI's lifespan state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = asyncio.ensure_future(self._run(scope))
        answer = await self._ask("lifespan.startup")
        if answer is None:
            return
        if answer["type"] == "lifespan.startup.failed":
            raise AppStartupFailed(f"the app's startup failed: {answer.get('message') or 'no message'}")

    async def shutdown(self) -> None:
        if not self._supported or self._task is None or self._task.done():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                answer = await self._ask("lifespan.shutdown")
                if answer is not None and answer["type"] == "lifespan.shutdown.failed":
                    print(f"The app's shutdown failed: {answer.get('message') or 'no message'}", file=sys.stderr)

    async def _ask(self, kind: str) -> Message | None:
        """Send one lifespan message and wait for the app's answer; None when the app does not speak lifespan."""
        assert self._task is not None
        await self._inbox.put({"type": kind})
        getting = asyncio.ensure_future(self._answers.get())
        await asyncio.wait((getting, self._task), return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            return getting.result()
        getting.cancel()
        self._supported = False
        return None

    async def _run(self, scope: dict[str, Any]) -> None:
        answered = False

        async def send(message: Message) -> None:
            nonlocal answered
            answered = True
            await self._answers.put(message)

        try:
            await self.app(scope, self._inbox.get, send)
        except Exception as exc:
            if answered:  # it spoke lifespan, then failed: its failed message was the answer
                print(f"The app's lifespan raised {exc!r}", file=sys.stderr)
            else:
                print(
                    f"The app does not speak the ASGI lifespan protocol ({exc!r}); serving it without", file=sys.stderr
                )
