"""`fnserve server`: one process serving the gateway, the `/v1` control plane and `/-/` internals.

`build_app` wires the parts together; `serve` runs them under uvicorn (uvloop + httptools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from fnserve._malloc import keep_large_buffers
from fnserve.auth import Authenticator, forget_in_process, load_or_create_owner_key, remember_in_process
from fnserve.backends.base import Backend
from fnserve.backends.local import LocalBackend
from fnserve.controlplane import disabling
from fnserve.controlplane.api import ControlPlane, build_control_plane
from fnserve.controlplane.autoscaler import Autoscaler
from fnserve.controlplane.jobs import build_jobs_router
from fnserve.controlplane.supervisor import LiveDeployment, Supervisor
from fnserve.controlplane.uploads import is_streamed_upload
from fnserve.disk import storage_error
from fnserve.docs import (
    ASSETS_URL,
    INDEX_URL,
    ROOT_SERVICE_DOCS_URL,
    docs_index_html,
    service_docs_url,
    swagger_asset,
    swagger_ui_html,
)
from fnserve.errors import (
    FnserveError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    StorageUnavailable,
    UriTooLong,
    ValidationFailed,
)
from fnserve.gateway.app import Gateway
from fnserve.gateway.connection import ReplicaListener
from fnserve.gateway.handle_calls import HandleCalls
from fnserve.gateway.http import (
    JSON,
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    replay,
    request_id_for,
    require_json,
    send_bytes,
    send_error,
    send_html,
    send_json,
)
from fnserve.gateway.jobs import JobRoutes
from fnserve.gateway.limits import ConnectionGuard
from fnserve.gateway.router import FunctionRoute
from fnserve.gateway.service_paths import swagger_page
from fnserve.home import HomeLock, SocketFolder, prepare_home, remove_leftovers
from fnserve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from fnserve.metrics import Metrics
from fnserve.queue.dispatcher import Dispatcher, server_id
from fnserve.settings import Settings
from fnserve.store import ArtifactStore, DeploymentState, StateStore
from fnserve.store.jobs import JobStore

logger = logging.getLogger("fnserve.server")

# Ids and names are short; a longer path is a mistake or an attack, and is refused before any work.
MAX_PATH_LENGTH = 2048
# What anyone may read under /v1: the API's own description. Everything else there needs the owner key.
CONTROL_PLANE_DOCS = "/v1/docs"
PUBLIC_API_PATHS = frozenset({"/v1/openapi.json"})
# What a service token may call under /v1 as well: these skip the owner check, and their routes check the caller.
# A prefix ending in "/" covers what is below it; one that does not covers itself too (`/v1/assets`, not `/v1/assetsX`).
TOKEN_API_PREFIXES = ("/v1/assets", "/v1/status/", "/v1/queues/position/")
ASSETS_PATH = ASSETS_URL + "/"
# Prometheus scrapes it with the owner key (`authorization: {type: Bearer, credentials: ...}` in its config).
METRICS_PATH = "/metrics"


def error_response(exc: FnserveError, request: Request, request_id: str | None = None) -> Response:
    request_id = request_id or request_id_for(request.scope)
    headers = {"x-request-id": request_id, **exc.headers()}
    return Response(
        exc.to_json(request_id), status_code=exc.http_status, media_type="application/json", headers=headers
    )


async def _fnserve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FnserveError)
    request_id = request_id_for(request.scope)  # once: a request without X-Request-ID gets a new one at each call
    if isinstance(exc, StorageUnavailable):  # not a bug of ours: one line, no traceback
        log_storage_failure(request_id, request.method, request.url.path, exc)
    return error_response(exc, request, request_id)


def log_storage_failure(request_id: str, method: str, path: str, exc: StorageUnavailable) -> None:
    logger.error("Request [%s] %s %s: %s %s", request_id, method, path, exc.code, exc.message)


def _os_error_handler(home: Path) -> Callable[[Request, Exception], Awaitable[Response]]:
    """OSErrors no store turned into our own error: a full or read-only disk is answered as such, anything else is
    a bug of ours."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OSError)
        error = storage_error(exc, exc.filename or home)
        if error is None:
            return await _unexpected_error(request, exc)
        return await _fnserve_error(request, error)

    return handle


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]} for error in exc.errors()
    ]
    summary = "; ".join(f"`{p['field']}`: {p['message']}" for p in problems)
    return error_response(ValidationFailed(f"Invalid request: {summary}", details={"fields": problems}), request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: FnserveError
    if exc.status_code == 404:
        error = NotFound(f"No API route at {request.url.path!r}; the API is described at /v1/openapi.json")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.url.path!r} does not accept {request.method}")
    else:
        error = InvalidRequest(str(exc.detail))
    return error_response(error, request)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    request_id = request_id_for(request.scope)
    logger.exception("Request [%s] %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    return error_response(
        InternalError(f"internal error; the server log has request {request_id}"), request, request_id
    )


class Server:
    """Everything one `fnserve server` runs, started and stopped in order by the ASGI lifespan."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        settings.check()
        self.settings = settings
        # First of all, before anything is read or written: a second server on this home stops here (HomeInUse).
        self.home_lock = HomeLock(settings.home)
        self.home_lock.acquire()
        try:
            self._assemble(settings, backend)
        except BaseException as exc:
            self.home_lock.release()
            if isinstance(exc, OSError):  # a full or read-only home: one clear line, not a traceback
                raise storage_error(exc, exc.filename or settings.home) or exc from None
            raise

    def _assemble(self, settings: Settings, backend: Backend | None) -> None:
        prepare_home(settings.home)
        remove_leftovers(settings.home)
        SocketFolder.remove_stale()
        self.store = StateStore(settings.database_url)
        self.artifacts = ArtifactStore(
            settings.home, max_unpacked_bytes=settings.max_code_unpacked_bytes, max_files=settings.max_code_files
        )
        self.socket_folder = SocketFolder()
        self.listener = ReplicaListener(self.socket_folder.socket_path)
        self.backend = backend or LocalBackend()
        self.owner_key, self.owner_key_created = load_or_create_owner_key(settings.home)
        self.authenticator = Authenticator(self.owner_key)
        self.metrics = Metrics()
        self.supervisor = Supervisor(settings, self.store, self.artifacts, self.backend, self.listener, self.metrics)
        self.plane = ControlPlane(settings, self.supervisor, self.store, self.artifacts, self.authenticator)
        self.dispatcher = Dispatcher(
            self.supervisor,
            JobStore(self.store.engine),
            assets=self.plane.assets,
            server=server_id(settings.home),
            inline_result_bytes=settings.inline_result_bytes,
        )
        self.autoscaler = Autoscaler(self.supervisor, self.dispatcher.queued_for)
        self.gateway = Gateway(
            self.supervisor,
            self.authenticator,
            JobRoutes(self.dispatcher, self.plane.assets, max_body_bytes=settings.max_body_bytes),
            max_body_bytes=settings.max_body_bytes,
            inline_result_bytes=settings.inline_result_bytes,
            timeout_s=settings.timeouts.invocation_s,
        )
        self.listener.handles = HandleCalls(self.gateway)  # replicas calling services (composition/)
        self.control_plane = build_control_plane(self.plane)
        self.control_plane.include_router(
            build_jobs_router(self.dispatcher, self.authenticator, self.store), prefix="/v1"
        )
        self.control_plane.add_exception_handler(FnserveError, _fnserve_error)
        self.control_plane.add_exception_handler(RequestValidationError, _validation_error)
        self.control_plane.add_exception_handler(HTTPException, _http_error)
        self.control_plane.add_exception_handler(OSError, _os_error_handler(settings.home))
        self.control_plane.add_exception_handler(Exception, _unexpected_error)

    async def startup(self) -> None:
        await asyncio.to_thread(self.plane.load_tokens)
        await self.listener.start()
        await disabling.keep_disabled(self.store, self.supervisor)
        await self.supervisor.start()
        await self.dispatcher.start()
        self.autoscaler.start()

    async def shutdown(self) -> None:
        await self.autoscaler.close()
        self.dispatcher.pause()  # no job starts now; running ones finish while their replicas drain
        await self.supervisor.close()
        await self.dispatcher.close()
        await self.listener.close()
        await self.backend.close()
        self.store.close()
        self.release()

    def release(self) -> None:
        """Give back what only one server may hold: the replica socket folder, and the home (another may start)."""
        self.socket_folder.remove()
        self.home_lock.release()

    def listening(self, url: str) -> None:
        """The server accepts requests at `url`: clients in this process, and a second server's error, can say so."""
        remember_in_process(url, self.owner_key)
        self.home_lock.record(url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if len(path) > MAX_PATH_LENGTH:
                error = UriTooLong(f"the URL path is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}")
                await send_error(send, error, request_id_for(scope))
            elif path.startswith("/-/"):
                await self._internal(scope, send)
            elif path in (INDEX_URL, CONTROL_PLANE_DOCS):
                await self._docs_page(scope, send)
            elif path == METRICS_PATH:
                if await self._owner(scope, send, METRICS_PATH):
                    body = self.metrics.render(
                        self.supervisor.deployments.values(), self.dispatcher.queued_for, len(self.dispatcher.jobs)
                    )
                    await send_bytes(send, 200, body, request_id_for(scope), METRICS_CONTENT_TYPE)
            elif path == "/v1" or path.startswith("/v1/"):
                if path in PUBLIC_API_PATHS or is_token_api(path) or await self._owner(scope, send, "the /v1 API"):
                    await self._control_plane(scope, receive, send)
            else:
                await self.gateway(scope, receive, send)
        elif kind == "websocket":  # to an app service, or refused (gateway/websocket.py)
            await self.gateway.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _control_plane(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`/v1`: uploads stream to disk in their routes; every other body is read here first, up to `max_body_bytes`,
        and must be JSON (415 otherwise; one without a content type is taken as JSON), whatever FastAPI would do."""
        if is_streamed_upload(scope["method"], scope["path"]):
            await self._run_control_plane(scope, receive, send)
            return
        try:
            body = await read_body(
                receive, self.settings.max_body_bytes, "upload code to /v1/artifacts/{sha256} and data as assets"
            )
            content_type = header(scope, b"content-type")
            require_json(content_type, body)
        except ClientDisconnected:
            return
        except FnserveError as exc:
            await send_error(send, exc, request_id_for(scope))
            return
        if body and not content_type:
            scope["headers"].append((b"content-type", JSON))  # FastAPI reads a body as JSON only when told
        await self._run_control_plane(scope, replay(body, receive), send)

    async def _run_control_plane(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The /v1 app, keeping the connection open after an unexpected error it answered.

        Starlette answers such an error through `_unexpected_error` (which logs it) and then raises it again for the
        server to see; uvicorn would log it a second time and close the connection, dropping the client's next
        keep-alive request. Once the answer is whole there is nothing left to cut short, so the error stops here.
        """
        answered = False

        async def noting_end(message: Message) -> None:
            nonlocal answered
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True

        try:
            await self.control_plane(scope, receive, noting_end)
        except Exception:
            if not answered:
                raise

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    if isinstance(exc, StorageUnavailable):
                        logger.error("fnserve server failed to start: %s", exc.message)
                    else:
                        logger.exception("fnserve server failed to start")
                    self.release()
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _owner(self, scope: Scope, send: Send, action: str) -> bool:
        """True for a request with the owner key; otherwise it has been answered with the 401 or 403."""
        try:
            self.authenticator.require_owner(scope["headers"], action=action)
        except FnserveError as exc:
            await send_error(send, exc, request_id_for(scope))
            return False
        return True

    async def _docs_page(self, scope: Scope, send: Send) -> None:
        """`/docs`: every service's docs, linked; `/v1/docs`: Swagger UI for the control plane. Both offline."""
        if scope["path"] == CONTROL_PLANE_DOCS:
            page = swagger_ui_html(title="fnserve control plane", spec_url="/v1/openapi.json")
        else:
            services = sorted(
                (function.name, service_docs_url(prefix), newest.spec.description)
                for prefix, function in self.supervisor.prefixes.items()
                if (newest := function.newest) is not None
            )
            page = docs_index_html(services)
        await send_html(send, page, request_id_for(scope))

    async def _internal(self, scope: Scope, send: Send) -> None:
        request_id = request_id_for(scope)
        path = scope["path"]
        if path == "/-/healthz":
            await send_json(send, 200, b'{"status":"ok"}', request_id)
        elif path == ROOT_SERVICE_DOCS_URL and (root := self.supervisor.prefixes.get("/")) and (live := root.pick()):
            await send_html(send, swagger_page(live), request_id)
        elif path.startswith(ASSETS_PATH):
            asset = swagger_asset(path.removeprefix(ASSETS_PATH))
            if asset is None:
                await send_error(send, NotFound(f"No documentation asset {path!r}"), request_id)
                return
            body, content_type = asset
            cache = ((b"cache-control", b"public, max-age=86400"),)
            await send_bytes(send, 200, body, request_id, content_type.encode(), cache)
        elif path == "/-/routes":
            if not await self._owner(scope, send, "/-/routes"):
                return
            routes = {prefix: route_summary(prefix, function) for prefix, function in self.supervisor.prefixes.items()}
            await send_json(send, 200, orjson.dumps(routes), request_id)
        else:
            await send_error(send, NotFound(f"No internal route {path!r}; try /-/routes or /-/healthz"), request_id)


def is_token_api(path: str) -> bool:
    """Whether a `/v1` path is one a service token may call too (see TOKEN_API_PREFIXES)."""
    return any(
        path.startswith(prefix) if prefix.endswith("/") else path == prefix or path.startswith(prefix + "/")
        for prefix in TOKEN_API_PREFIXES
    )


def route_summary(prefix: str, function: FunctionRoute[LiveDeployment]) -> dict[str, Any]:
    """What `/-/routes` says of one prefix: the function, its deployed versions, the newest one's endpoints."""
    newest = function.newest
    if newest is None:  # a prefix is removed with its last version, unless its service is disabled
        return {"service": function.name, "state": DeploymentState.disabled.value, "versions": {}, "endpoints": []}
    return {
        "service": function.name,
        "state": DeploymentState.disabled.value if function.disabled else newest.state.value,
        "versions": {str(number): live.state.value for number, live in sorted(function.by_number.items())},
        "endpoints": [f"{e.method} {prefix.rstrip('/')}{e.path}" for e in newest.spec.endpoints]
        # An app served whole answers every method and path under its prefix (docs/APPS.md).
        or ([f"* {prefix.rstrip('/')}/... ({newest.spec.http_app} app)"] if newest.spec.http_app else []),
    }


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so port 0 gives an ephemeral port we can print and hand out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response's headers and body, written apart, wait
    # on the client's delayed ACK (40 ms per keep-alive request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def uvicorn_config(app: Any, settings: Settings, *, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # uvicorn's httptools protocol, each response written in one piece, requests kept within the settings' limits
        http=ConnectionGuard(settings).protocol,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.timeouts.graceful_shutdown_s),
    )


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    on_ready: Callable[[str, Server], Awaitable[None] | None] | None = None,
    log_level: str = "warning",
) -> None:
    """Run a server until it is stopped (SIGINT/SIGTERM). `on_ready(url, server)` runs once it accepts requests."""
    keep_large_buffers(asyncio.get_running_loop())
    app = Server(settings)
    sock = sock or bind_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level))

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        app.listening(url)
        if on_ready is not None:
            result = on_ready(url, app)
            if asyncio.iscoroutine(result):
                await result

    announcer = asyncio.ensure_future(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        forget_in_process(url)
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer
