"""`fs.handle(...)`: another service, whose endpoints are methods, from inside a replica or from any Python process.

Inside a replica a call goes over the replica's own connection to the server (`channel.py`), which routes it as the
gateway would; elsewhere it goes over HTTP with the Python client (`client/deployment.py`, whose method names the
handle uses too). The same method works in both kinds of code: awaited in async code, called plainly in sync code
(an endpoint's thread): `await h.embed(text="hi")`, `h.embed(text="hi")`, `async for chunk in h.stream(...)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

import orjson

from fnserve.composition.channel import HandleChannel, installed
from fnserve.errors import Forbidden, SpecError, Unauthenticated
from fnserve.sdk.introspect import json_default
from fnserve.sdk.service import Service

if TYPE_CHECKING:
    from fnserve.client.deployment import Deployment

_UNSET: Any = object()
# A job's final states (client/jobs.py's FINISHED: the client, and httpx with it, loads only outside replicas).
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
_JOB_POLL_S = 30.0  # one wait on the server for a job to finish, at most


def handle(
    service: str | Service[Any], *, version: int | None = None, url: str | None = None, api_key: str | None = None
) -> Handle:
    """A handle on another service: its endpoints are methods, named as the Python client names them.

    Inside a replica the service must be one its own service declares (`@fs.service(uses=[...])`), else a call
    raises `Forbidden`; errors come back as the target's error class (its `code`). Outside, the call goes over HTTP
    to `url` with `api_key` (defaults as for `fs.get_deployment`).

    Args:
        service: the service's name, or the service itself.
        version: pin one version (default: the versions' traffic split, as for any caller).
        url: the server, outside a replica.
        api_key: the key (or token) sent, outside a replica.

    Example:
        >>> ranker = fs.handle("ranker")
        >>> ranker.rank(query="cats")                 # sync code
        >>> await ranker.rank(query="cats")           # async code
        >>> for chunk in ranker.tokens(prompt="hi"): ...
        >>> ranker.options(version=3).rank(query="cats")
        >>> ranker.rank.submit(query="cats").result(timeout_s=60)
    """
    if isinstance(service, Service):
        name, route_prefix = service.name, service.route_prefix
    elif isinstance(service, str):
        name, route_prefix = service, f"/{service}"
    else:
        raise SpecError(f"fs.handle() takes a service name or a @fs.service, got {service!r:.80}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise SpecError(f"version must be a version number >= 1, got {version!r}")
    return Handle(name, version, url=url, api_key=api_key, route_prefix=route_prefix)


class Handle:
    """Another service; made by `fs.handle(...)`. Endpoints are attributes: `handle.embed(text=...)`."""

    def __init__(
        self,
        name: str,
        version: int | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        route_prefix: str | None = None,
    ) -> None:
        self._name = name
        self._version = version
        self._url = url
        self._api_key = api_key
        self._route_prefix = route_prefix or f"/{name}"  # where a token holder finds it (it cannot ask /v1)
        self._deployment: Deployment | None = None  # outside a replica, once used

    @property
    def service_name(self) -> str:
        return self._name

    @property
    def version(self) -> int | None:
        return self._version

    def options(self, *, version: int | None = _UNSET) -> Handle:
        """The same handle with other options: `version=3` pins a version, `version=None` unpins."""
        if version is not None and version is not _UNSET:
            handle(self._name, version=version)  # checks it
        return Handle(
            self._name,
            self._version if version is _UNSET else version,
            url=self._url,
            api_key=self._api_key,
            route_prefix=self._route_prefix,
        )

    def __getattr__(self, method: str) -> HandleMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return HandleMethod(self, method)

    def __repr__(self) -> str:
        pinned = "" if self._version is None else f" v{self._version}"
        return f"<Handle {self._name!r}{pinned}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A handle travels by name (bound into an initializer's arguments), never with a key: it calls from wherever
        # it lands, with what that place has (a replica's own connection).
        return (Handle, (self._name, self._version))

    def close(self) -> None:
        """Close the HTTP connections a handle outside a replica opened (a replica's handle has none)."""
        if self._deployment is not None:
            self._deployment.close()

    async def aclose(self) -> None:
        if self._deployment is not None:
            await self._deployment.aclose()
            self._deployment.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Handle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _client_deployment(self) -> Deployment:
        if self._deployment is None:
            from fnserve.client.deployment import Deployment
            from fnserve.sdk.deploy import get_deployment

            try:
                deployment = get_deployment(self._name, url=self._url, api_key=self._api_key)
            except (Unauthenticated, Forbidden):  # a service's token, not the owner key: its public docs say enough
                deployment = _described(self._name, self._route_prefix, self._url, self._api_key)
            if self._version is not None:  # pinned by path, as `/{prefix}/-/versions/N/...` pins any call
                info = {
                    **deployment._info,
                    "route_prefix": f"{deployment._info['route_prefix']}/-/versions/{self._version}",
                }
                deployment = Deployment(deployment._client, info)
            self._deployment = deployment
        return self._deployment


class HandleMethod:
    """One endpoint of a handle: call it, or `.submit(...)` it as a job."""

    def __init__(self, handle: Handle, method: str) -> None:
        self._handle = handle
        self._method = method

    def __call__(self, **arguments: Any) -> Any:
        h = self._handle
        channel = installed()
        if channel is not None:
            body = _encode(arguments)
            if _on_a_loop():
                return _ReplicaCall(channel, h._name, h._version, self._method, body)
            return channel.call_blocking(h._name, h._version, "call", self._method, body, {"stream": None}, None)
        deployment = h._client_deployment()
        if _on_a_loop():
            return _ClientCall(getattr(deployment, f"a{self._method}")(**arguments))
        return getattr(deployment, self._method)(**arguments)

    def submit(self, **arguments: Any) -> Any:
        """Queue the call as a job: a job with `.result()`, `.wait()`, `.status()` (awaited in async code)."""
        h = self._handle
        channel = installed()
        if channel is not None:
            body = _encode(arguments)
            if _on_a_loop():
                return _asubmit(channel, h._name, h._version, self._method, body)
            queued = channel.call_blocking(h._name, h._version, "submit", self._method, body, {}, None)
            return ReplicaJob(channel, h._name, queued["id"], queued)
        deployment = h._client_deployment()
        if _on_a_loop():
            return getattr(deployment, f"a{self._method}").submit(**arguments)
        return getattr(deployment, self._method).submit(**arguments)


class _ReplicaCall:
    """A handle call from async code in a replica: awaited for its answer, or iterated for a stream's chunks."""

    def __init__(self, channel: HandleChannel, target: str, version: int | None, method: str, body: bytes) -> None:
        self._args = (channel, target, version, method, body)

    def __repr__(self) -> str:  # what an error shows when the call was returned or sent on instead of awaited
        return f"<handle call {self._args[1]}.{self._args[3]}(): await it, or iterate over it for a stream>"

    def __await__(self) -> Generator[Any, None, Any]:
        channel, target, version, method, body = self._args
        return channel.call(target, version, "call", method, body, {"stream": False}).__await__()

    def __aiter__(self) -> AsyncIterator[Any]:
        channel, target, version, method, body = self._args
        return channel.stream(target, version, method, body, {"stream": True})


class _ClientCall:
    """The same over HTTP: the client's coroutine, awaited, or iterated when the endpoint streams."""

    def __init__(self, coroutine: Any) -> None:
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coroutine.__await__()  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        chunks = await self._coroutine
        async for chunk in chunks:
            yield chunk


async def _asubmit(channel: HandleChannel, target: str, version: int | None, method: str, body: bytes) -> ReplicaJob:
    queued = await channel.call(target, version, "submit", method, body, {})
    return ReplicaJob(channel, target, queued["id"], queued)


class ReplicaJob:
    """A job submitted through a handle in a replica. Like the client's `Job`; its methods are awaited in async code.

    Example:
        >>> job = fs.handle("ranker").rank.submit(query="cats")
        >>> job.result(timeout_s=60)
    """

    def __init__(self, channel: HandleChannel, target: str, job_id: str, info: dict[str, Any]) -> None:
        self._channel = channel
        self._target = target
        self.id = job_id
        self._info = info

    def __repr__(self) -> str:
        return f"<ReplicaJob {self.id} {self._info.get('status')}>"

    def status(self) -> Any:
        """`IN_QUEUE`, `IN_PROGRESS`, `COMPLETED`, ... (a coroutine in async code)."""
        if _on_a_loop():
            return self._astatus()
        self._info = self._ask(0.0)
        return self._info["status"]

    async def _astatus(self) -> str:
        self._info = await self._aask(0.0)
        return str(self._info["status"])

    def wait(self, timeout_s: float | None = None) -> Any:
        """Wait until it finishes or `timeout_s` passes; the job as the server describes it."""
        if _on_a_loop():
            return self._await(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._info["status"] not in FINISHED:
            self._info = self._ask(_poll_s(deadline))
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self._info

    async def _await(self, timeout_s: float | None) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._info["status"] not in FINISHED:
            self._info = await self._aask(_poll_s(deadline))
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self._info

    def result(self, timeout_s: float | None = None) -> Any:
        """Its output once it finished; its error class when it FAILED, TIMED_OUT or was CANCELLED."""
        if _on_a_loop():
            return self._aresult(timeout_s)
        return self._output(self.wait(timeout_s), timeout_s)

    async def _aresult(self, timeout_s: float | None) -> Any:
        return self._output(await self._await(timeout_s), timeout_s)

    def _output(self, job: dict[str, Any], timeout_s: float | None) -> Any:
        if job["status"] == "COMPLETED":
            return job.get("output")
        if job["status"] in FINISHED:
            from fnserve.client.jobs import job_error

            raise job_error(job)
        raise TimeoutError(f"Job {self.id} of {self._target!r} is still {job['status']} after {timeout_s:g} s")

    def _ask(self, wait_s: float) -> dict[str, Any]:
        found: dict[str, Any] = self._channel.call_blocking(
            self._target, None, "job", self.id, b"", {"wait_s": wait_s}, wait_s
        )
        return found

    async def _aask(self, wait_s: float) -> dict[str, Any]:
        found: dict[str, Any] = await self._channel.call(self._target, None, "job", self.id, b"", {"wait_s": wait_s})
        return found


def _described(name: str, route_prefix: str, url: str | None, api_key: str | None) -> Deployment:
    """A `Deployment` of a service as its public OpenAPI document (`/docs/specs.json`) describes it: what a caller
    holding only the service's token can read."""
    from fnserve.client.api import Client, raise_for_error
    from fnserve.client.deployment import Deployment

    client = Client(url, api_key=api_key)
    try:
        response = client._http.get(f"{route_prefix.rstrip('/')}/docs/specs.json")
        raise_for_error(response)
        document = response.json()
    except BaseException:
        client.close()
        raise
    endpoints = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if path == "/ping":
                continue
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            endpoints.append(
                {
                    "path": path,
                    "method": method.upper(),
                    "streaming": "text/event-stream" in content,
                    "url": f"{client.url}{route_prefix}{path}",
                    "description": operation.get("description"),
                }
            )
    info = {
        "name": name,
        "service_id": name,
        "url": f"{client.url}{route_prefix}",
        "state": "ACTIVE",
        "endpoints": endpoints,
        "route_prefix": route_prefix,
    }
    return Deployment(client, info)


def _poll_s(deadline: float | None) -> float:
    if deadline is None:
        return _JOB_POLL_S
    return max(0.0, min(_JOB_POLL_S, deadline - time.monotonic()))


def _encode(arguments: dict[str, Any]) -> bytes:
    return orjson.dumps(arguments, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
