"""The gateway's ASGI app: `/{route_prefix}/{endpoint path}` → a replica, answers streamed back.

Plain ASGI on purpose: this is the hot path, and it does only what each request needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import orjson

from fnserve.auth import Authenticator
from fnserve.controlplane.supervisor import LiveDeployment, Supervisor
from fnserve.docs import SERVICE_DOCS_PATH, SERVICE_SPEC_PATH
from fnserve.errors import (
    DeploymentFailed,
    FnserveError,
    InternalError,
    InvalidRequest,
    InvocationTimeout,
    NoReplicasAvailable,
    NotFound,
)
from fnserve.gateway.connection import ReplicaConnection
from fnserve.gateway.http import (
    Receive,
    Scope,
    Send,
    header,
    parse_json_object,
    read_body,
    request_id_for,
    send_error,
    send_html,
    send_json,
)
from fnserve.gateway.router import EndpointRoute, FunctionRoute
from fnserve.gateway.service_paths import auto_parameters, openapi_json, service_info, swagger_page
from fnserve.gateway.validation import ArgumentsValidator
from fnserve.store import DeploymentState

logger = logging.getLogger("fnserve.gateway")

_HEALTHY = orjson.dumps({"status": "healthy"})
# Pinning a call to one version: `/{prefix}/-/versions/2/hello`, or the header `fnserve-version: 2`.
VERSION_PATH = "/-/versions/"
VERSION_HEADER = b"fnserve-version"
# Requests one deployment keeps waiting for a free replica slot before it answers 503.
MAX_WAITING_REQUESTS = 1024


class Gateway:
    def __init__(
        self, supervisor: Supervisor, authenticator: Authenticator, *, max_body_bytes: int, timeout_s: float | None
    ) -> None:
        self.supervisor = supervisor
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_for(scope)
        try:
            await self._handle(scope, receive, send, request_id)
        except FnserveError as exc:
            await send_error(send, exc, request_id)
        except Exception:
            logger.exception("Request [%s] %s %s failed", request_id, scope["method"], scope["path"])
            await send_error(
                send, InternalError(f"internal error; the server log has request {request_id}"), request_id
            )

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        resolved = self.supervisor.prefixes.resolve(scope["path"])
        if resolved is None:
            raise NotFound(f"No service at {scope['path']!r}; GET /-/routes lists the route prefixes")
        function, rest = resolved
        live, rest = self._version(function, rest, scope)
        method = scope["method"]
        if rest == "/ping" and method in ("GET", "POST"):  # public, for load balancers and uptime checks
            self._pick(live)
            await send_json(send, 200, _HEALTHY, request_id)
            return
        if rest == SERVICE_SPEC_PATH and method == "GET":  # docs are public: they describe, they do not call
            await send_json(send, 200, openapi_json(live), request_id)
            return
        if rest == SERVICE_DOCS_PATH and method == "GET":
            await send_html(send, swagger_page(live), request_id)
            return
        if rest == "/info" and method in ("GET", "POST"):
            self.authenticator.require_owner(scope["headers"], action=f"{live.name}'s /info")
            await send_json(send, 200, orjson.dumps(service_info(live)), request_id)
            return
        if live.spec.auth:
            self.authenticator.require_invoke(scope["headers"], live.function.function_id, live.name)
        route, path_params = live.routes.match(method, rest)
        body = await read_body(receive, self.max_body_bytes)
        query_string = scope["query_string"]
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)) if query_string else {}
        validator = _validator(live, route)
        if validator is not None:  # wrong types, missing or unknown fields: refused here, never sent to a replica
            validator.validate_request(body, path_params, query)
        else:
            parse_json_object(body)
        connection = self._pick(live)
        if connection.in_flight >= live.concurrency:
            connection = await self._wait_for_slot(live)
        if route.spec.streaming:
            chunks = connection.stream(route.index, body, path_params, query)
            sse = b"text/event-stream" in (header(scope, b"accept") or b"")
            await self._stream(chunks, receive, send, request_id, sse)
            return
        watch = _DisconnectWatch(receive)
        try:
            result = await connection.call(route.index, body, path_params, query, self.timeout_s)
        except asyncio.CancelledError:
            if watch.disconnected:  # the caller left; the call was cancelled in the replica
                return
            raise
        finally:
            watch.stop()
        await send_json(send, 200, result, request_id)

    @staticmethod
    def _version(function: FunctionRoute[LiveDeployment], rest: str, scope: Scope) -> tuple[LiveDeployment, str]:
        """The version that serves this call: pinned by path (`/-/versions/N/...`) or by the `fnserve-version`
        header, else picked among the ACTIVE versions by weight."""
        pinned: bytes | str | None = None
        if rest.startswith(VERSION_PATH):
            pinned, _, tail = rest[len(VERSION_PATH) :].partition("/")
            rest = "/" + tail
        else:
            pinned = header(scope, VERSION_HEADER)
        if pinned is None:
            live = function.pick()
            if live is None:
                raise NoReplicasAvailable(f"Function {function.name!r} has no deployed version; deploy one")
            return live, rest
        text = pinned.decode("latin-1") if isinstance(pinned, bytes) else pinned
        if not (text.isascii() and text.isdigit()) or len(text) > 9:  # int() refuses some digits, like '²'
            raise InvalidRequest(f"version {text[:20]!r} is not a version number; pin a version like 2")
        live = function.version(int(text))
        if live is None:
            deployed = ", ".join(str(n) for n in sorted(function.by_number)) or "none"
            raise NotFound(f"Function {function.name!r} has no deployed version {text} (deployed: {deployed})")
        return live, rest

    def _pick(self, live: LiveDeployment) -> ReplicaConnection:
        connection = live.picker.pick(live.ready)
        if connection is not None:
            return connection
        state = live.state
        if state is DeploymentState.error:
            raise DeploymentFailed(
                f"{live.label} is in ERROR: {(live.reason or 'unknown').splitlines()[0]}; "
                f"see `fnserve status {live.name}` and the replica logs, fix the code and deploy again"
            )
        raise NoReplicasAvailable(
            f"{live.label} has 0 of {live.desired} replicas ready (state {state.value}); "
            + ("retry in a moment" if state is not DeploymentState.inactive else "deploy it again")
        )

    async def _wait_for_slot(self, live: LiveDeployment) -> ReplicaConnection:
        """Every replica has `max_request_concurrency` calls in flight: wait (in order, bounded in number and time)
        until one has a free slot."""
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout_s is None else loop.time() + self.timeout_s
        while True:
            if len(live.waiting) >= MAX_WAITING_REQUESTS:
                raise NoReplicasAvailable(
                    f"{live.label} is at capacity: {live.ready_count} replica(s) × {live.concurrency} concurrent calls "
                    f"busy, and {len(live.waiting)} requests already waiting (limit {MAX_WAITING_REQUESTS}); retry "
                    "later, or raise max_instances or max_request_concurrency"
                )
            waiter: asyncio.Future[None] = loop.create_future()
            live.waiting.append(waiter)
            # A plain timer rather than asyncio.timeout(): this path runs for every call over the limit.
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    live.release()  # woken, but leaving: the slot goes to the next one waiting
                else:  # timed out, or the caller left: it no longer waits
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        live.waiting.remove(waiter)
                if isinstance(exc, TimeoutError):
                    raise InvocationTimeout(
                        f"no replica of {live.label} had a free slot within {self.timeout_s:g} s (each takes "
                        f"{live.concurrency} calls at once); raise max_instances or max_request_concurrency"
                    ) from None
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            connection = self._pick(live)
            if connection.in_flight < live.concurrency:
                return connection

    async def _stream(
        self, chunks: AsyncIterator[bytes], receive: Receive, send: Send, request_id: str, sse: bool
    ) -> None:
        """Send chunks as they come. Errors before the first chunk are normal error responses; after it, a
        final `event: error`. A client disconnect cancels the stream, which cancels the generator."""
        watch = _DisconnectWatch(receive, after_s=0)  # a stream may wait long for its next chunk: watch at once
        started = False
        try:
            async for chunk in chunks:
                if not started:
                    started = True
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": _stream_headers(sse, request_id)}
                    )
                await send({"type": "http.response.body", "body": _sse(chunk) if sse else chunk, "more_body": True})
        except FnserveError as exc:
            if not started:
                raise
            await send({"type": "http.response.body", "body": _sse_error(exc, request_id), "more_body": True})
        except asyncio.CancelledError:
            if watch.disconnected:  # the client left; nothing more to send
                return
            raise
        finally:
            watch.stop()
            with contextlib.suppress(BaseException):
                await chunks.aclose()  # type: ignore[attr-defined]
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": _stream_headers(sse, request_id)})
        await send({"type": "http.response.body", "body": b""})


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _validator(live: LiveDeployment, route: EndpointRoute) -> ArgumentsValidator | None:
    """The route's validator, made on its first call once a replica has said which parameters its initializer
    fills in (those may be left out); None when the spec has no arguments schema."""
    if route.index in live.validators:
        return live.validators[route.index]
    if live.version.api is None:
        return None
    schema = route.spec.arguments_schema
    validator = None
    if schema is not None:
        try:
            validator = ArgumentsValidator(schema, route=route.spec.key, optional=auto_parameters(live))
        except Exception:  # a schema we cannot compile: the replica validates alone, as before
            logger.exception("Arguments schema of %s %s cannot be compiled", live.label, route.spec.key)
    live.validators[route.index] = validator
    return validator


def _stream_headers(sse: bool, request_id: str) -> list[tuple[bytes, bytes]]:
    if sse:
        return [
            (b"content-type", b"text/event-stream"),
            (b"x-request-id", request_id.encode()),
            (b"cache-control", b"no-cache"),
        ]
    return [(b"content-type", b"text/plain; charset=utf-8"), (b"x-request-id", request_id.encode())]


class _DisconnectWatch:
    """Cancels the current request's task when the client disconnects, so the replica's work is cancelled too.

    Most calls finish in well under `SLOW_CALL_S`; watching `receive()` costs a task, so for plain calls the watch
    only starts once a call has run that long.
    """

    SLOW_CALL_S = 0.05

    def __init__(self, receive: Receive, *, after_s: float = SLOW_CALL_S) -> None:
        self.receive = receive
        self.request = asyncio.current_task()
        self.disconnected = False
        self.watcher: asyncio.Task[None] | None = None
        self.timer = asyncio.get_running_loop().call_later(after_s, self._start)

    def _start(self) -> None:
        self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        await _wait_disconnect(self.receive)
        self.disconnected = True
        if self.request is not None:
            self.request.cancel()

    def stop(self) -> None:
        self.timer.cancel()
        if self.watcher is not None:
            self.watcher.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _sse(chunk: bytes) -> bytes:
    lines = chunk.decode(errors="replace").rstrip("\n").split("\n")
    return "".join(f"data: {line}\n" for line in lines).encode() + b"\n"


def _sse_error(exc: FnserveError, request_id: str) -> bytes:
    return b"event: error\ndata: " + exc.to_json(request_id) + b"\n\n"
