"""A replica's side of handle calls: HANDLE_CALL frames on the replica's own connection, answers matched by id.

The worker makes one `HandleChannel` and feeds it the answers (RESULT, MEDIA, ERROR, CHUNK, END under a handle call's
id) and the inbound CANCELs. Calls are made from the loop (async endpoints) or from pool threads (sync endpoints);
frames are only ever written from the loop. Each call remembers the inbound call it was made for (`current_call`, a
context variable the worker sets), so cancelling that call cancels its handle calls, which the server cancels in the
target replica, and so on down the chain.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from fnserve.errors import FnserveError, error_from_code
from fnserve.responses import from_frame
from fnserve.runtime.protocol import Kind
from fnserve.spec import EndpointSpec

# The context keys the gateway (or the server, for a handle call) adds to a CALL for a service that uses others.
REQUEST_ID_KEY = "request_id"
TIMEOUT_KEY = "timeout_s"

_ANSWERS = frozenset({Kind.RESULT, Kind.MEDIA, Kind.ERROR, Kind.CHUNK, Kind.END})
_FINAL = frozenset({Kind.RESULT, Kind.MEDIA, Kind.ERROR, Kind.END})
_CANCELLED = object()  # put in a call's queue when its inbound call was cancelled


@dataclass(frozen=True, slots=True)
class InboundCall:
    """The call a replica is serving: its protocol id (what CANCEL names), the request id the caller sees, and its
    deadline (time.monotonic(); None: none)."""

    call_id: int
    request_id: str | None
    deadline: float | None

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else max(0.001, self.deadline - time.monotonic())


current_call: contextvars.ContextVar[InboundCall | None] = contextvars.ContextVar("fnserve_call", default=None)


def with_call_facts(
    context: dict[str, Any] | None, request_id: str, endpoint: EndpointSpec, timeout_s: float | None
) -> dict[str, Any]:
    """A CALL's context plus what its handle calls carry on: the request id, and the call's time limit (a stream has
    none)."""
    facts: dict[str, Any] = {REQUEST_ID_KEY: request_id}
    limit = None if endpoint.streaming else (endpoint.request_timeout_s or timeout_s)
    if limit is not None:
        facts[TIMEOUT_KEY] = limit
    return facts if context is None else {**context, **facts}


def inbound(call_id: int, context: dict[str, Any] | None) -> InboundCall:
    """The inbound call a CALL frame starts, from what its context says."""
    request_id = timeout_s = None
    if context is not None:
        request_id = context.get(REQUEST_ID_KEY)
        timeout_s = context.get(TIMEOUT_KEY)
    return InboundCall(call_id, request_id, None if timeout_s is None else time.monotonic() + timeout_s)


class ContextPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of whoever submitted them, so a sync endpoint's handle calls know
    the inbound call they belong to. Only replicas of services that use others get it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class _OneAnswer:
    """Where a call that has one answer, awaited on the loop, gets it: a future (cheaper than a queue)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future

    def put_nowait(self, message: Any) -> None:
        if not self.future.done():
            self.future.set_result(message)


@dataclass(slots=True)
class _Pending:
    answers: asyncio.Queue[Any] | queue.Queue[Any] | _OneAnswer
    inbound_id: int | None
    target: str


class HandleChannel:
    """Sends handle calls from this replica and routes their answers back to the callers."""

    def __init__(self, send: Callable[..., None], loop: asyncio.AbstractEventLoop) -> None:
        self._send = send
        self._loop = loop
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    # -- the worker's side (on the loop) ---------------------------------------------------------------------------

    @staticmethod
    def is_answer(kind: int) -> bool:
        return kind in _ANSWERS

    def answer(self, message: list[Any]) -> None:
        """A frame answering one of our calls."""
        kind = message[0]
        pending = self._pending.pop(message[1], None) if kind in _FINAL else self._pending.get(message[1])
        if pending is not None:
            pending.answers.put_nowait(message)

    def cancel_inbound(self, inbound_id: int) -> None:
        """The inbound call was cancelled: so are the handle calls it made."""
        if not self._pending:
            return
        for call_id in [i for i, pending in list(self._pending.items()) if pending.inbound_id == inbound_id]:
            pending = self._pending.pop(call_id)
            self._send(Kind.CANCEL, call_id)
            pending.answers.put_nowait(_CANCELLED)

    def close(self) -> None:
        """The connection to the server is gone: every call waiting fails."""
        for pending in self._pending.values():
            pending.answers.put_nowait(
                [Kind.ERROR, 0, "replica_crashed", "the connection to the server closed during the call", None]
            )
        self._pending.clear()

    # -- the callers' side -----------------------------------------------------------------------------------------

    def _start(
        self,
        answers: asyncio.Queue[Any] | queue.Queue[Any] | _OneAnswer,
        target: str,
        version: int | None,
        op: str,
        name: str,
        body: bytes,
        options: dict[str, Any],
    ) -> int:
        """Register a call and send its frame (from any thread); returns its id."""
        call = current_call.get()
        if call is not None:
            if call.request_id is not None:
                options["request_id"] = call.request_id
            remaining = call.remaining_s()
            if remaining is not None:
                options["timeout_s"] = remaining
        call_id = next(self._ids)
        self._pending[call_id] = _Pending(answers, None if call is None else call.call_id, target)
        frame = (Kind.HANDLE_CALL, call_id, target, version, op, name, body, options)
        if _on_loop(self._loop):
            self._send(*frame)
        else:
            self._loop.call_soon_threadsafe(self._send_from_thread, call_id, frame)
        return call_id

    def _send_from_thread(self, call_id: int, frame: tuple[Any, ...]) -> None:
        if call_id in self._pending:  # not cancelled meanwhile
            self._send(*frame)

    def _give_up(self, call_id: int) -> None:
        """The caller stopped waiting (cancelled, or it left a stream early): the server cancels the call."""
        if self._pending.pop(call_id, None) is not None:
            self._send(Kind.CANCEL, call_id)

    def give_up(self, call_id: int) -> None:
        if _on_loop(self._loop):
            self._give_up(call_id)
        else:
            self._loop.call_soon_threadsafe(self._give_up, call_id)

    async def call(
        self, target: str, version: int | None, op: str, name: str, body: bytes, options: dict[str, Any]
    ) -> Any:
        """One answer (RESULT or MEDIA), from the loop."""
        answer = _OneAnswer(self._loop.create_future())
        call_id = self._start(answer, target, version, op, name, body, options)
        try:
            return _value(await answer.future, target)
        finally:
            self._give_up(call_id)

    async def stream(
        self, target: str, version: int | None, name: str, body: bytes, options: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """A streaming call's chunks, from the loop."""
        answers: asyncio.Queue[Any] = asyncio.Queue()
        call_id = self._start(answers, target, version, "call", name, body, options)
        try:
            while True:
                message = await answers.get()
                if message is not _CANCELLED and message[0] == Kind.CHUNK:
                    yield _chunk(message[2])
                elif message is not _CANCELLED and message[0] == Kind.END:
                    return
                else:
                    _value(message, target)  # raises
                    raise FnserveError(f"service {target!r} answered a stream with one result")
        finally:
            self._give_up(call_id)

    def call_blocking(
        self,
        target: str,
        version: int | None,
        op: str,
        name: str,
        body: bytes,
        options: dict[str, Any],
        timeout_s: float | None,
    ) -> Any:
        """From a pool thread: the answer, or, when the endpoint streams (options "stream" None), an iterator of
        its chunks."""
        answers: queue.Queue[Any] = queue.Queue()
        call_id = self._start(answers, target, version, op, name, body, options)
        try:
            message = _get(answers, timeout_s, target)
            if message is not _CANCELLED and message[0] in (Kind.CHUNK, Kind.END):
                return self._chunks(call_id, answers, message, target, timeout_s)
            return _value(message, target)
        except BaseException:
            self.give_up(call_id)
            raise

    def _chunks(
        self, call_id: int, answers: queue.Queue[Any], first: list[Any], target: str, timeout_s: float | None
    ) -> Iterator[Any]:
        message = first
        try:
            while message[0] == Kind.CHUNK:
                yield _chunk(message[2])
                message = _get(answers, timeout_s, target)
            if message[0] != Kind.END:
                _value(message, target)
        finally:
            self.give_up(call_id)


_installed: HandleChannel | None = None  # this process's, when it is a replica (runtime/worker.py installs it)


def install(channel: HandleChannel | None) -> None:
    """The worker's: `fs.handle(...)` calls in this process go over `channel` (None: over HTTP)."""
    global _installed
    _installed = channel


def installed() -> HandleChannel | None:
    return _installed


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _get(answers: queue.Queue[Any], timeout_s: float | None, target: str) -> Any:
    # The server enforces the deadline; this only keeps a thread from waiting forever if an answer is lost.
    try:
        message = answers.get(timeout=None if timeout_s is None else timeout_s + 5.0)
    except queue.Empty:
        raise error_from_code(
            "invocation_timeout", f"service {target!r} did not answer within {timeout_s:g} s", {"service": target}
        ) from None
    if message is _CANCELLED:
        raise asyncio.CancelledError
    return message


def _value(message: Any, target: str) -> Any:
    if message is _CANCELLED:
        raise asyncio.CancelledError
    kind = message[0]
    if kind == Kind.RESULT:
        return orjson.loads(message[2])
    if kind == Kind.MEDIA:
        return from_frame(*message[2:6])
    if kind == Kind.ERROR:
        raise handle_error(message[2], message[3], message[4], target)
    if kind in (Kind.CHUNK, Kind.END):
        raise TypeError(f"this endpoint of {target!r} streams; iterate over the call (`async for chunk in ...`)")
    raise FnserveError(f"unexpected answer {kind} from service {target!r}")


def _chunk(data: bytes) -> Any:
    """A chunk as the Python client gives it: text, or bytes that are not UTF-8."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def handle_error(code: str, message: str, details: dict[str, Any] | None, target: str) -> FnserveError:
    """The target's error, as its class; raised out of the caller's endpoint it keeps its code (runtime/invoke.py)."""
    error = error_from_code(code, message, {**(details or {}), "service": target})
    error.from_handle = target  # type: ignore[attr-defined]
    return error
