"""The gateway's ASGI app: `/{route_prefix}/{endpoint path}` → a replica, answers streamed back.

Plain ASGI on purpose: this is the hot path, and it does only what each request needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from fnserve.auth import Authenticator
from fnserve.composition.channel import with_call_facts
from fnserve.composition.multiplex import MODEL_ID_HEADERS, MODEL_ID_KEY, choose_replica, model_id_from_header
from fnserve.controlplane.inactive import not_running_error
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
    ServiceDisabled,
    StorageUnavailable,
)
from fnserve.gateway.connection import ReplicaConnection
from fnserve.gateway.http import (
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
    header,
    is_json,
    parse_json_object,
    query_params,
    raw_body,
    read_body,
    read_body_parts,
    replay,
    request_id_for,
    require_json,
    send_bytes,
    send_error,
    send_html,
    send_json,
)
from fnserve.gateway.jobs import (
    ASSETS_HEADER,
    COMMAND_JOB_PREFIX,
    DEFAULT_POLL_S,
    MAX_POLL_S,
    POLL_HEADER,
    JobRoutes,
    is_job_path,
    parse_seconds,
)
from fnserve.gateway.multipart import read_form
from fnserve.gateway.passthrough import APP_INFO_PATH, APP_PING_PATH, pass_through, root_path_of
from fnserve.gateway.router import EndpointRoute, FunctionRoute
from fnserve.gateway.service_paths import arguments_validator, openapi_json, service_info, swagger_page
from fnserve.gateway.streamed_upload import STREAM_FROM_BYTES, StreamedUpload
from fnserve.gateway.websocket import not_an_app
from fnserve.gateway.websocket import websocket as relay_websocket
from fnserve.request import REQUEST_KEY
from fnserve.responses import Response
from fnserve.sse import encode_error, encode_event
from fnserve.store import DeploymentState
from fnserve.store.jobs import asset_content_url
from fnserve.uploads import ACCEPT_KEY, FILES_KEY, RAW_BODY_KEY, UPLOAD_KEY

logger = logging.getLogger("fnserve.gateway")

_HEALTHY = orjson.dumps({"status": "healthy"})
# Pinning a call to one version: `/{prefix}/-/versions/2/hello`, or the header `fnserve-version: 2`.
VERSION_PATH = "/-/versions/"
VERSION_HEADER = b"fnserve-version"
# Where `_handle` notes which service a request reached, for the request metrics.
SERVICE_SCOPE_KEY = "fnserve.service"
_MODEL_ID_WITH_JOB = (
    "a model id (fnserve-model-id) applies to direct calls and streams, not to jobs; call the endpoint directly, or "
    "pass the model id to the job as an argument"
)


class Gateway:
    def __init__(
        self,
        supervisor: Supervisor,
        authenticator: Authenticator,
        jobs: JobRoutes,
        *,
        max_body_bytes: int,
        inline_result_bytes: int,
        timeout_s: float | None,
    ) -> None:
        self.supervisor = supervisor
        self.metrics = supervisor.metrics
        self.authenticator = authenticator
        self.jobs = jobs
        self.max_body_bytes = max_body_bytes
        self.inline_result_bytes = inline_result_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_for(scope)
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_noting_status, request_id)
        except ClientDisconnected:
            pass  # gone before its body ended: nothing was called, and no one to answer
        except FnserveError as exc:
            if isinstance(exc, StorageUnavailable):  # not a bug of ours: one line, no traceback
                logger.error(
                    "Request [%s] %s %s: %s %s", request_id, scope["method"], scope["path"], exc.code, exc.message
                )
            await send_error(send_noting_status, exc, request_id)
        except Exception:
            logger.exception("Request [%s] %s %s failed", request_id, scope["method"], scope["path"])
            await send_error(
                send_noting_status,
                InternalError(f"internal error; the server log has request {request_id}"),
                request_id,
            )
        finally:
            # A caller that left before its answer is counted as nginx does, 499.
            service = scope.get(SERVICE_SCOPE_KEY, "")
            self.metrics.request(service, status or 499, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        resolved = self.supervisor.prefixes.resolve(scope["path"])
        if resolved is None:
            raise await self._not_served(scope)
        function, rest = resolved
        if function.disabled:  # every path, `/ping` and `/docs` too: a load balancer must not take it for healthy
            scope[SERVICE_SCOPE_KEY] = function.name
            raise ServiceDisabled(
                f"Service {function.name!r} is disabled by its owner, so it takes no calls and no jobs; "
                f"`fnserve enable {function.name}` starts it again"
            )
        live, rest, pinned = self._version(function, rest, scope)
        scope[SERVICE_SCOPE_KEY] = live.name
        if live.spec.http_app is not None:  # an app: every path is its own, but for /-/ (gateway/passthrough.py)
            await self._app_request(scope, receive, send, request_id, live, rest, pinned)
            return
        method = scope["method"]
        if rest == "/ping" and method in ("GET", "POST"):  # public, for load balancers and uptime checks
            await self._ping(send, request_id, live)
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
        if is_job_path(rest):
            if _model_id_of(scope) is not None:
                raise InvalidRequest(_MODEL_ID_WITH_JOB)
            await self.jobs(scope, receive, send, request_id, live, rest, pinned)
            return
        route, path_params = live.routes.match(method, rest)
        poll, with_assets, content_type, accept = _call_headers(scope)
        # Only a service with `@fs.multiplexed` loaders looks for a model id (or one with no replica ready yet, which
        # may have them): the others pay one test (composition/multiplex.py).
        model_id = _model_id_of(scope) if live.multiplexed or not live.ready else None
        query = query_params(scope)
        context: dict[str, Any] | None = None  # for the replica: a file, a form, the request; a job's assets
        upload: StreamedUpload | None = None  # a large file's body, sent after the call as it arrives
        if route.takes_other_bodies:  # a file, a form or the request itself, not only JSON arguments
            body, query, context, upload = await self._other_body(
                receive, scope, live, route, rest, query, content_type, streams=poll is None
            )
            if context is not None and poll is not None:
                raise InvalidRequest(
                    "a raw body or form cannot be held as a job's input; call the endpoint without "
                    "fnserve-poll-seconds, or upload the file as an asset and pass its id"
                )
        else:
            body = await read_body(receive, route.spec.max_body_bytes or self.max_body_bytes)
            require_json(content_type, body)
        if poll is not None:  # run it as a job: its answer if it finishes within the window, else a 202 to poll
            if model_id is not None:
                raise InvalidRequest(_MODEL_ID_WITH_JOB)
            # An empty value asks for the default window.
            poll_s = parse_seconds(
                poll or None, default=DEFAULT_POLL_S, limit=MAX_POLL_S, name="the fnserve-poll-seconds header"
            )
            await self.jobs.answer_polled_call(
                send, request_id, live, route, body, path_params, query, scope, poll_s=poll_s, pinned=pinned
            )
            return
        if context is None:  # else the replica validates the other arguments, from the query string
            validator = arguments_validator(live, route)
            if validator is not None:  # wrong types, missing or unknown fields: refused here, never sent to a replica
                validator.validate_request(body, path_params, query)
            else:
                parse_json_object(body)
        if with_assets:
            files = await self.jobs.input_assets(scope, live)
            context = {**(context or {}), "assets": {asset_id: str(path) for asset_id, path in files.items()}}
        if accept is not None and _may_ask_for_media(accept) and not route.spec.streaming:
            # It may ask for another encoding of the answer (a numpy array as .npy, an image as JPEG): responses.py
            context = {**(context or {}), ACCEPT_KEY: accept.decode("latin-1")}
        if live.spec.uses:  # it calls other services: its handle calls carry this call's id and deadline
            context = with_call_facts(context, request_id, route.spec, self.timeout_s)
        if model_id is None:
            connection = live.picker.pick(live.ready)
            if connection is None:
                connection = await self._cold_start(live)
            if connection.in_flight and connection.in_flight >= live.slot_limit():  # a limit is at least 1
                connection = await self._wait_for_slot(live)
        else:  # to a replica that holds the model, or loads it (composition/multiplex.py)
            context = {**(context or {}), MODEL_ID_KEY: model_id}
            connection = await self._replica_for_model(live, model_id)
        if route.spec.streaming:
            batches = connection.stream(route.index, body, path_params, query, context)
            media_type = route.spec.media_type
            if media_type is None:
                sse = b"text/event-stream" in (header(scope, b"accept") or b"")
                await self._stream(batches, receive, send, request_id, sse)
            else:  # a declared media type (audio, video): its raw bytes, never SSE
                await self._stream(batches, receive, send, request_id, False, media_type.encode())
            return
        # An upload watches the client itself, as it reads the body (connection.py).
        watch = _DisconnectWatch(receive) if upload is None else None
        try:
            timeout_s = route.spec.request_timeout_s or self.timeout_s
            result = await connection.call(
                route.index, body, path_params, query, timeout_s, context=context, upload=upload
            )
        except asyncio.CancelledError:
            if watch is not None and watch.disconnected:  # the caller left; the call was cancelled in the replica
                return
            raise
        finally:
            if watch is not None:
                watch.stop()
        if result.__class__ is not bytes:  # bytes or fs.Response: sent as they are, with their media type
            await self._send_media(send, live, result, request_id)  # type: ignore[arg-type]
            return
        if len(result) > self.inline_result_bytes:
            await self._redirect_to_stored(send, live, result, request_id)
            return
        await send_json(send, 200, result, request_id)

    async def _ping(self, send: Send, request_id: str, live: LiveDeployment) -> None:
        if live.target > 0:  # scaled to zero is healthy too: the next call starts a replica
            self._pick(live)
        await send_json(send, 200, _HEALTHY, request_id)

    async def _app_request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        live: LiveDeployment,
        rest: str,
        pinned: bool,
    ) -> None:
        """A request under an app service's prefix: fnserve's own `/-/ping` and `/-/info`, else the app's, once the
        caller's token is checked. A command service has jobs too (docs/COMMANDS.md): `/-/run`, `/-/runsync`,
        `/-/status/{id}`..., and a POST to its inference URL with `fnserve-poll-seconds`."""
        if rest == APP_PING_PATH and scope["method"] in ("GET", "POST"):
            await self._ping(send, request_id, live)
            return
        if rest == APP_INFO_PATH and scope["method"] in ("GET", "POST"):
            self.authenticator.require_owner(scope["headers"], action=f"{live.name}'s /-/info")
            await send_json(send, 200, orjson.dumps(service_info(live)), request_id)
            return
        if live.spec.auth:
            self.authenticator.require_invoke(scope["headers"], live.function.function_id, live.name)
        if live.spec.command is not None:
            if rest.startswith(COMMAND_JOB_PREFIX) and is_job_path(rest[len(COMMAND_JOB_PREFIX) :]):
                await self.jobs(scope, receive, send, request_id, live, rest[len(COMMAND_JOB_PREFIX) :], pinned)
                return
            poll = header(scope, POLL_HEADER)
            if poll is not None and rest == live.spec.command.inference_url and scope["method"] == "POST":
                await self._polled_command_call(scope, receive, send, request_id, live, poll, pinned)
                return
        await pass_through(self, scope, receive, send, request_id, live, root_path_of(scope["path"], rest))

    async def _polled_command_call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        live: LiveDeployment,
        poll: bytes,
        pinned: bool,
    ) -> None:
        """A POST to a command's inference URL with `fnserve-poll-seconds`: its JSON body run as a job, answered if it
        finishes in the window, else a 202 to poll (NVCF's pexec does the same)."""
        body = await read_body(receive, live.spec.max_body_bytes or self.max_body_bytes)
        require_json(header(scope, b"content-type"), body)
        parse_json_object(body)
        poll_s = parse_seconds(
            poll or None, default=DEFAULT_POLL_S, limit=MAX_POLL_S, name="the fnserve-poll-seconds header"
        )
        await self.jobs.answer_polled_call(
            send, request_id, live, None, body, {}, {}, scope, poll_s=poll_s, pinned=pinned
        )

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: relayed to an app service's replica (gateway/websocket.py), or refused."""
        await relay_websocket(self, scope, receive, send)

    def resolve_app(self, scope: Scope) -> tuple[LiveDeployment, str]:
        """The app version a WebSocket goes to, and its root path, once the caller may reach it; else the error."""
        resolved = self.supervisor.prefixes.resolve(scope["path"])
        if resolved is None:
            raise NotFound(f"No service at {scope['path']!r}; GET /-/routes lists the route prefixes")
        function, rest = resolved
        if function.disabled:
            raise ServiceDisabled(f"Service {function.name!r} is disabled by its owner, so it takes no WebSockets")
        live, rest, _ = self._version(function, rest, scope)
        if live.spec.http_app is None:
            raise not_an_app(live.name)
        if live.spec.auth:
            self.authenticator.require_invoke(scope["headers"], live.function.function_id, live.name)
        return live, root_path_of(scope["path"], rest)

    async def replica_for(self, live: LiveDeployment) -> ReplicaConnection:
        """A replica with a free slot, as a call gets one in `_handle`: picked, started (from zero), or waited for."""
        connection = live.picker.pick(live.ready)
        if connection is None:
            connection = await self._cold_start(live)
        if connection.in_flight and connection.in_flight >= live.slot_limit():
            connection = await self._wait_for_slot(live)
        return connection

    async def _replica_for_model(self, live: LiveDeployment, model_id: str) -> ReplicaConnection:
        """A replica with a free slot for a call of `model_id`: one that holds it, else the least loaded; when none
        has a free slot (or none is ready), the first to have one, as for any call, then the best choice again."""
        connection = choose_replica(live.ready, model_id, live.slot_limit())
        if connection is not None:
            return connection
        connection = await self.replica_for(live)
        return choose_replica(live.ready, model_id, live.slot_limit()) or connection

    async def _other_body(
        self,
        receive: Receive,
        scope: Scope,
        live: LiveDeployment,
        route: EndpointRoute,
        rest: str,
        query: dict[str, str],
        content_type: bytes | None,
        *,
        streams: bool,
    ) -> tuple[bytes, dict[str, str], dict[str, Any] | None, StreamedUpload | None]:
        """The body of an endpoint with a file or `fs.Request` parameter: (body, query, context for the replica, the
        upload to send after the call); the context is None for JSON arguments, which are validated as any endpoint's
        are. A file over `STREAM_FROM_BYTES` is streamed (when `streams`: a plain call), not read here whole."""
        limit = route.spec.max_body_bytes or self.max_body_bytes
        if route.spec.request_parameter is not None:  # the request as it came, any body (a webhook): no 415
            body = await read_body(receive, limit)
            return (
                body,
                query,
                {REQUEST_KEY: _request_facts(scope, rest, query, drop_authorization=live.spec.auth)},
                None,
            )
        is_form = content_type is not None and content_type.startswith(b"multipart/")
        is_file = is_form or (content_type is not None and not is_json(content_type))
        if streams and is_file and not route.spec.streaming:
            parts, ended = await read_body_parts(receive, limit, up_to=STREAM_FROM_BYTES)
            if not ended:  # large: sent to the replica as it arrives (gateway/streamed_upload.py)
                assert content_type is not None
                if is_form:
                    upload = StreamedUpload(receive, parts, limit, content_type, route.spec.file_parameters)
                    return b"", query, {UPLOAD_KEY: "form"}, upload
                upload = StreamedUpload(receive, parts, limit, content_type, None)
                return b"", query, {UPLOAD_KEY: "raw", RAW_BODY_KEY: raw_body(route.spec, content_type)}, upload
            receive = replay(b"".join(parts), receive)
        if is_form:
            assert content_type is not None
            # Read part by part as it arrives: file parts for the file parameters, fields with the query string's.
            fields, files = await read_form(receive, content_type, limit, route.spec.file_parameters)
            return b"", {**query, **fields}, {FILES_KEY: files}, None
        body = await read_body(receive, limit)
        if body and content_type and not is_json(content_type):  # the file itself
            return body, query, {RAW_BODY_KEY: raw_body(route.spec, content_type)}, None
        return body, query, None, None

    async def _not_served(self, scope: Scope) -> FnserveError:
        """The error for a path no running service owns: a service that runs nothing says so (its state, why, and how
        to start it again: controlplane/inactive.py); any other path is a 404."""
        path = scope["path"]
        past = self.supervisor.past_prefixes.resolve(path)
        if past is not None:
            error = await asyncio.to_thread(not_running_error, self.supervisor.store, *past)
            if error is not None:
                scope[SERVICE_SCOPE_KEY] = (error.details or {}).get("service", "")
                return error
        return NotFound(f"No service at {path!r}; GET /-/routes lists the route prefixes")

    async def _send_media(self, send: Send, live: LiveDeployment, response: Response, request_id: str) -> None:
        """An answer that is not JSON: its bytes with its media type, status and headers; over the inline limit, kept
        as an asset of that media type like a large JSON result (its status and headers are not kept)."""
        if len(response.content) > self.inline_result_bytes:
            await self._redirect_to_stored(send, live, response.content, request_id, response.media_type)
            return
        extra = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items())
        await send_bytes(send, response.status, response.content, request_id, response.media_type.encode(), extra)

    async def _redirect_to_stored(
        self, send: Send, live: LiveDeployment, result: bytes, request_id: str, content_type: str = "application/json"
    ) -> None:
        """A result over the inline limit is kept as an asset for the service's retention; the caller gets a 302."""
        expires_at = time.time() + live.spec.result_retention_s
        asset = await asyncio.to_thread(
            self.jobs.assets.store_result,
            live.function.function_id,
            result,
            expires_at=expires_at,
            content_type=content_type,
        )
        location = asset_content_url(asset.asset_id).encode()
        await send_bytes(send, 302, b"", request_id, extra=((b"location", location),))

    @staticmethod
    def _version(function: FunctionRoute[LiveDeployment], rest: str, scope: Scope) -> tuple[LiveDeployment, str, bool]:
        """The version that serves this call, and whether the caller chose it: pinned by path (`/-/versions/N/...`)
        or by the `fnserve-version` header, else picked among the ACTIVE versions by weight."""
        pinned: bytes | str | None = None
        if rest.startswith(VERSION_PATH):
            pinned, _, tail = rest[len(VERSION_PATH) :].partition("/")
            rest = "/" + tail
        else:
            pinned = header(scope, VERSION_HEADER)
        if pinned is None:
            return pick_version(function, None), rest, False
        text = pinned.decode("latin-1") if isinstance(pinned, bytes) else pinned
        if not (text.isascii() and text.isdigit()) or len(text) > 9:  # int() refuses some digits, like '²'
            raise InvalidRequest(f"version {text[:20]!r} is not a version number; pin a version like 2")
        return pick_version(function, int(text)), rest, True

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

    async def _cold_start(self, live: LiveDeployment) -> ReplicaConnection:
        """No replica is ready: when one is starting (or the deployment is scaled to zero and may start one), wait
        for it, bounded by the invocation timeout; otherwise answer why there is none."""
        if not self.supervisor.wake(live):
            return self._pick(live)  # raises, naming the state
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout_s is None else loop.time() + self.timeout_s
        while True:
            try:
                await live.wait_turn(deadline)
            except TimeoutError:
                raise NoReplicasAvailable(
                    f"{live.label} had no replica ready within {self.timeout_s:g} s; its replicas are starting, "
                    "retry in a moment (see `fnserve status`)"
                ) from None
            connection = live.picker.pick(live.ready)
            if connection is not None:
                return connection
            if live.stopping or live.state is not DeploymentState.active:
                return self._pick(live)

    async def _wait_for_slot(self, live: LiveDeployment) -> ReplicaConnection:
        """Every replica has as many calls in flight as it may take (`max_request_concurrency`, or while a scale-up
        brings replicas, its share of the autoscaling target): wait (in order, bounded in number and time) until one
        has a free slot."""
        loop = asyncio.get_running_loop()
        waited_from = loop.time()
        deadline = None if self.timeout_s is None else waited_from + self.timeout_s
        hold_ends = waited_from + live.scale_up_wait_s  # then a slot beyond the target will do (spread.py)
        while True:
            limit = live.spec.max_queued_requests
            if len(live.waiting) >= limit:
                raise NoReplicasAvailable(
                    f"{live.label} is at capacity: {live.ready_count} replica(s) × {live.concurrency} concurrent calls "
                    f"busy, and {len(live.waiting)} requests already waiting (max_queued_requests={limit}); retry "
                    "later, or raise max_instances, max_ongoing_requests or max_queued_requests"
                )
            held = live.slot_limit(loop.time() - waited_from) < live.concurrency
            wake_by = hold_ends if held and (deadline is None or hold_ends < deadline) else deadline
            try:
                await live.wait_turn(wake_by)
            except TimeoutError:
                if wake_by == deadline:
                    raise InvocationTimeout(
                        f"no replica of {live.label} had a free slot within {self.timeout_s:g} s (each takes "
                        f"{live.concurrency} calls at once); raise max_instances or max_request_concurrency"
                    ) from None
                # else the hold is over: any free slot will do
            connection = self._pick(live)
            if connection.in_flight < live.slot_limit(loop.time() - waited_from):
                return connection

    async def _stream(
        self,
        batches: AsyncIterator[list[bytes]],
        receive: Receive,
        send: Send,
        request_id: str,
        sse: bool,
        media_type: bytes | None = None,
    ) -> None:
        """Send chunks as they come. Errors before the first chunk are normal error responses; after it, a
        final `event: error`. A client disconnect cancels the stream, which cancels the generator."""
        watch = _DisconnectWatch(receive, after_s=0)  # a stream may wait long for its next chunk: watch at once
        started = False
        try:
            async for batch in batches:
                if not started:
                    started = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": _stream_headers(sse, request_id, media_type),
                        }
                    )
                # A plain stream is the chunks' bytes back to back; SSE keeps each chunk whole as one event.
                body = b"".join(map(encode_event, batch)) if sse else b"".join(batch)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except FnserveError as exc:
            if not started:
                raise
            await send({"type": "http.response.body", "body": encode_error(exc.to_json(request_id)), "more_body": True})
        except asyncio.CancelledError:
            if watch.disconnected:  # the client left; nothing more to send
                return
            raise
        finally:
            watch.stop()
            with contextlib.suppress(BaseException):
                await batches.aclose()  # type: ignore[attr-defined]
        if not started:
            await send(
                {"type": "http.response.start", "status": 200, "headers": _stream_headers(sse, request_id, media_type)}
            )
        await send({"type": "http.response.body", "body": b""})


def pick_version(function: FunctionRoute[LiveDeployment], number: int | None) -> LiveDeployment:
    """The version that serves a call: `number` when pinned, else one of the ACTIVE versions by weight."""
    if number is None:
        live = function.pick()
        if live is None:
            raise NoReplicasAvailable(f"Function {function.name!r} has no deployed version; deploy one")
        return live
    live = function.version(number)
    if live is None:
        deployed = ", ".join(str(n) for n in sorted(function.by_number)) or "none"
        raise NotFound(f"Function {function.name!r} has no deployed version {number} (deployed: {deployed})")
    return live


def _call_headers(scope: Scope) -> tuple[bytes | None, bool, bytes | None, bytes | None]:
    """The headers that change how a call runs, in one pass: its poll window, whether it names assets, the body's
    content type, and what the caller accepts."""
    poll = None
    with_assets = False
    content_type = None
    accept = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
        elif name == POLL_HEADER:
            poll = value
        elif name == ASSETS_HEADER:
            with_assets = True
    return poll, with_assets, content_type, accept


def _model_id_of(scope: Scope) -> str | None:
    """The multiplexed model a call names: `fnserve-model-id`, or Ray Serve's `serve_multiplexed_model_id`."""
    for name, value in scope["headers"]:
        if name in MODEL_ID_HEADERS:
            try:
                return model_id_from_header(value)
            except ValueError as exc:
                raise InvalidRequest(f"the {name.decode()} header: {exc}") from None
    return None


def _may_ask_for_media(accept: bytes) -> bool:
    """Whether an Accept header may ask for an answer other than JSON: not `*/*` (curl, httpx) nor JSON."""
    return accept != b"*/*" and not accept.startswith(b"application/json")


def _request_facts(scope: Scope, path: str, query: dict[str, str], *, drop_authorization: bool) -> dict[str, Any]:
    """What an `fs.Request` parameter receives besides the body (request.py); the token is not the endpoint's."""
    headers = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in scope["headers"]
        if not (drop_authorization and name == b"authorization")
    ]
    return {"method": scope["method"], "path": path, "headers": headers, "query": query}


def _stream_headers(sse: bool, request_id: str, media_type: bytes | None = None) -> list[tuple[bytes, bytes]]:
    if media_type is not None:
        return [(b"content-type", media_type), (b"x-request-id", request_id.encode())]
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
