"""A service's job paths (docs/JOBS.md), beside its endpoints: `/run`, `/runsync`, `/status/{id}`,
`/cancel/{id}`, `/retry/{id}`, `/health` and `/purge-queue`, plus the headers that make any call a
job (`fnserve-poll-seconds`) or hand it assets (`fnserve-input-assets`).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import orjson

from fnserve.controlplane.supervisor import LiveDeployment
from fnserve.errors import InvalidRequest, MethodNotAllowed, error_from_code
from fnserve.gateway.http import (
    Receive,
    Scope,
    Send,
    header,
    query_params,
    read_body,
    require_json,
    send_bytes,
    send_json,
)
from fnserve.gateway.router import EndpointRoute, ServiceRoutes
from fnserve.gateway.service_paths import arguments_validator
from fnserve.queue.dispatcher import Assets, Dispatcher
from fnserve.spec import HTTP_METHODS
from fnserve.store.assets import parse_asset_header
from fnserve.store.jobs import Job, JobState, asset_content_url

POLL_HEADER = b"fnserve-poll-seconds"
ASSETS_HEADER = b"fnserve-input-assets"
REQUEST_ID_HEADER = b"fnserve-request-id"
MAX_POLL_S = 300.0
DEFAULT_POLL_S = 5.0
DEFAULT_RUNSYNC_WAIT_S = 90.0
MAX_STATUS_WAIT_S = 60.0

# A command service's job paths are under `/-`: `/-/run`, `/-/status/{id}`...; every other path is its server's.
COMMAND_JOB_PREFIX = "/-"
JOB_PATHS = {"/run": "POST", "/runsync": "POST", "/health": "GET", "/purge-queue": "POST"}
JOB_ID_PATHS = {"/status/": "GET", "/cancel/": "POST", "/retry/": "POST"}
_SUBMIT_KEYS = ("endpoint", "method", "input", "policy")
_POLICY_LIMITS = {"timeout_s": 7 * 86_400.0, "ttl_s": 30 * 86_400.0}


def is_job_path(rest: str) -> bool:
    return rest in JOB_PATHS or rest.startswith(("/status/", "/cancel/", "/retry/"))


def parse_seconds(raw: bytes | str | None, *, default: float, limit: float, name: str) -> float:
    """A wait in seconds from a header or query value: 0 to `limit`; InvalidRequest naming `name` otherwise."""
    if raw is None:
        return default
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= limit:
        raise InvalidRequest(f"{name} must be a number of seconds from 0 to {limit:g}, got {text[:40]!r}")
    return value


def job_result(job: Job) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """A finished job answered as its synchronous call would be: the output, a 302 to it, or its error."""
    if job.state is JobState.completed:
        if job.output_asset is not None:
            return 302, b"", [(b"location", asset_content_url(job.output_asset).encode())]
        return 200, job.output or b"null", []
    error = job.error or {"code": "internal_error", "message": f"job {job.job_id} is {job.state.value}"}
    exc = error_from_code(error["code"], error["message"], error.get("details"))
    return exc.http_status, exc.to_json(), [(name.encode(), value.encode()) for name, value in exc.headers().items()]


def pending_headers(job: Job) -> tuple[tuple[bytes, bytes], ...]:
    return ((REQUEST_ID_HEADER, job.job_id.encode()), (b"location", f"/v1/status/{job.job_id}".encode()))


class JobRoutes:
    """Answers a service's job paths; the gateway has resolved the version and checked the caller."""

    def __init__(self, dispatcher: Dispatcher, assets: Assets, *, max_body_bytes: int) -> None:
        self.dispatcher = dispatcher
        self.assets = assets
        self.max_body_bytes = max_body_bytes

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, live: LiveDeployment, rest: str, pinned: bool
    ) -> None:
        method = scope["method"]
        prefix = next((p for p in JOB_ID_PATHS if rest.startswith(p)), None)
        allowed = JOB_PATHS[rest] if prefix is None else JOB_ID_PATHS[prefix]
        if method != allowed:
            raise MethodNotAllowed(
                f"{rest!r} does not accept {method}; it accepts {allowed}", details={"allow": [allowed]}
            )
        query = query_params(scope)
        function_id = live.function.function_id
        answer: Any
        status = 200
        if rest in ("/run", "/runsync"):
            body = await read_body(receive, self.max_body_bytes)
            require_json(header(scope, b"content-type"), body)
            job = await self.submit_request(live, body, scope, pinned)
            if rest == "/run":
                status, answer = 202, {"id": job.job_id, "status": job.state.value}
            else:
                wait_s = parse_seconds(
                    query.get("wait_s"), default=DEFAULT_RUNSYNC_WAIT_S, limit=MAX_POLL_S, name="wait_s"
                )
                if await self.dispatcher.wait(job, wait_s):
                    answer = self.dispatcher.describe(job)
                else:
                    status, answer = 202, {"id": job.job_id, "status": job.state.value}
        elif rest == "/health":
            answer = await self.dispatcher.health(function_id)
        elif rest == "/purge-queue":
            answer = {"removed": await self.dispatcher.purge(function_id)}
        else:
            assert prefix is not None
            job = await self.dispatcher.find(rest[len(prefix) :], function_id)
            if prefix == "/status/":
                wait_s = parse_seconds(query.get("wait_s"), default=0, limit=MAX_STATUS_WAIT_S, name="wait_s")
                await self.dispatcher.wait(job, wait_s)
                job = await self.dispatcher.find(job.job_id, function_id)  # fresh, if another server holds it
            elif prefix == "/cancel/":
                job = await self.dispatcher.cancel(job)
            else:
                job = await self.dispatcher.retry(job)
            answer = self.dispatcher.describe(job)
        await send_json(send, status, orjson.dumps(answer), request_id)

    async def submit_request(self, live: LiveDeployment, body: bytes, scope: Scope, pinned: bool) -> Job:
        """`/run` and `/runsync`: a JSON body naming the endpoint and its input."""
        request = _json_object(body, what="the job request")
        unknown = sorted(set(request) - set(_SUBMIT_KEYS))
        if unknown:
            raise InvalidRequest(
                f"unknown field(s) {', '.join(map(repr, unknown))} in the job request; "
                f"it takes {', '.join(_SUBMIT_KEYS)}"
            )
        route: EndpointRoute | None
        path_params: dict[str, str]
        if live.spec.command is not None:  # its input goes to the command's inference URL (queue/command_jobs.py)
            route, path_params = None, {}
            _check_command_endpoint(live.spec.command.inference_url, request.get("endpoint"), request.get("method"))
        else:
            route, path_params = _route(live.routes, request.get("endpoint"), request.get("method"))
        arguments = request.get("input", {})
        if not isinstance(arguments, dict):
            raise InvalidRequest(f"`input` must be a JSON object of arguments, got {type(arguments).__name__}")
        overrides = _policy(request.get("policy"))
        return await self.submit(
            live, route, orjson.dumps(arguments), path_params, {}, scope, pinned=pinned, overrides=overrides
        )

    async def submit(
        self,
        live: LiveDeployment,
        route: EndpointRoute | None,
        body: bytes,
        path_params: dict[str, str],
        query: dict[str, Any],
        scope: Scope,
        *,
        pinned: bool,
        overrides: dict[str, float] | None = None,
    ) -> Job:
        """Validate a call's arguments and queue it as a job (`route` None: a command service's, for its inference
        URL, which validates its input itself)."""
        if route is not None:
            if route.spec.streaming:
                raise InvalidRequest(
                    f"{route.spec.key} streams its answer, so it cannot run as a job; call it directly instead"
                )
            validator = arguments_validator(live, route)
            if validator is not None:
                validator.validate_request(body, path_params, query)
        assets = await self.input_assets(scope, live)
        return await self.dispatcher.submit(
            live,
            route,
            body,
            path_params,
            query,
            assets=list(assets),
            pinned=pinned,
            policy=self.dispatcher.policy_for(live, route, overrides or {}),
        )

    async def input_assets(self, scope: Scope, live: LiveDeployment) -> dict[str, Path]:
        """The assets a call names in `fnserve-input-assets`, checked now: id → local file."""
        raw = header(scope, ASSETS_HEADER)
        if raw is None:
            return {}
        ids = parse_asset_header(raw.decode("latin-1"))
        if not ids:
            return {}
        return await asyncio.to_thread(self.assets.resolve_inputs, ids, live.function.function_id)

    async def answer_polled_call(
        self,
        send: Send,
        request_id: str,
        live: LiveDeployment,
        route: EndpointRoute | None,
        body: bytes,
        path_params: dict[str, str],
        query: dict[str, Any],
        scope: Scope,
        *,
        poll_s: float,
        pinned: bool,
    ) -> None:
        """A call with `fnserve-poll-seconds`: run as a job; its answer if it finishes in time, else a 202."""
        job = await self.submit(live, route, body, path_params, query, scope, pinned=pinned)
        if await self.dispatcher.wait(job, poll_s):
            await self.send_result(send, job, request_id)
        else:
            await send_bytes(send, 202, b"", request_id, extra=pending_headers(job))

    async def send_result(self, send: Send, job: Job, request_id: str) -> None:
        status, body, extra = job_result(job)
        await self.dispatcher.mark_delivered(job)
        await send_bytes(send, status, body, request_id, extra=(*extra, (REQUEST_ID_HEADER, job.job_id.encode())))


def _json_object(body: bytes, *, what: str) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(
            f'{what} must be a JSON object, got {type(parsed).__name__}; for example {{"input": {{}}}}'
        )
    return parsed


def _route(routes: ServiceRoutes, endpoint: Any, method: Any) -> tuple[EndpointRoute, dict[str, str]]:
    """The endpoint a job names: its path (and method, when the path has several), or the service's only one."""
    if method is not None and (not isinstance(method, str) or method.upper() not in HTTP_METHODS):
        raise InvalidRequest(f"`method` must be one of {', '.join(HTTP_METHODS)}, got {method!r}")
    if endpoint is None:
        only = routes.only()
        if only is None:
            raise InvalidRequest('name the endpoint to run, e.g. {"endpoint": "/hello", "input": {...}}')
        if "{" in only.spec.path:
            raise InvalidRequest(f'{only.spec.key} has path parameters; give the path, e.g. "endpoint": "/..."')
        return only, {}
    if not isinstance(endpoint, str) or not endpoint.startswith("/") or len(endpoint) > 2048:
        raise InvalidRequest(f"`endpoint` must be an endpoint path like '/hello', got {endpoint!r:.80}")
    if method is not None:
        return routes.match(method.upper(), endpoint)
    try:
        return routes.match("POST", endpoint)
    except MethodNotAllowed as exc:
        allowed = (exc.details or {}).get("allow", [])
        if len(allowed) != 1:
            raise InvalidRequest(
                f'{endpoint!r} has several methods ({", ".join(allowed)}); say which with "method"'
            ) from None
        return routes.match(allowed[0], endpoint)


def _check_command_endpoint(inference_url: str, endpoint: Any, method: Any) -> None:
    """A command service's job goes to its inference URL, by POST; a request naming anything else is refused."""
    if endpoint is not None and endpoint != inference_url:
        raise InvalidRequest(
            f"a job of this service is POSTed to its inference URL {inference_url!r}; leave out `endpoint`, got "
            f"{endpoint!r:.80}"
        )
    if method is not None and (not isinstance(method, str) or method.upper() != "POST"):
        raise InvalidRequest(f"a job of this service is a POST to {inference_url!r}; got method {method!r:.20}")


def _policy(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f'`policy` must be a JSON object like {{"timeout_s": 60}}, got {value!r:.80}')
    overrides: dict[str, float] = {}
    for key, raw in value.items():
        limit = _POLICY_LIMITS.get(key)
        if limit is None:
            raise InvalidRequest(f"unknown policy field {key!r}; it takes {', '.join(_POLICY_LIMITS)}")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= limit:
            raise InvalidRequest(f"policy.{key} must be a number of seconds above 0 and at most {limit:g}, got {raw!r}")
        overrides[key] = float(raw)
    return overrides
