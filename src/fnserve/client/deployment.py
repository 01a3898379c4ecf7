"""`Deployment`: a handle on one deployed service, whose endpoints are methods.

`/hello` becomes `deployment.hello(**kwargs)` and `await deployment.ahello(**kwargs)`; a streaming
route returns an iterator of chunks (`deployment.astream()` an async one). `deployment.hello.submit(**kwargs)`
queues the call as a job and returns a `Job` (`await deployment.ahello.submit(...)` an `AsyncJob`).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence
from typing import Any

from fnserve.client.api import AsyncClient, Client, jobs_prefix
from fnserve.client.jobs import AsyncJob, Job
from fnserve.errors import DeploymentFailed, ServiceDisabled
from fnserve.method_names import method_names

_POLL_INTERVAL_S = 0.05


class Deployment:
    """A deployed service. Made by `fs.deploy(service)(...)` or `fs.get_deployment(name)`."""

    def __init__(self, client: Client, info: dict[str, Any]) -> None:
        self._client = client
        self._async_client: AsyncClient | None = None
        self._info = info
        self._routes = method_names(info["endpoints"])
        # An invocation token, when the deploy made one (the service had none): shown here, never again.
        self.token: str | None = info.get("token")
        self._model_id: str | None = None  # the multiplexed model its calls name (`options`)
        self._root: Deployment = self  # whose connections it uses: the deployment `options` was called on

    # -- what it is ------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._info["name"])

    @property
    def service_id(self) -> str:
        return str(self._info["service_id"])

    @property
    def address(self) -> str:
        return str(self._info["url"])

    @property
    def state(self) -> str:
        return str(self._info["state"])

    @property
    def reason(self) -> str | None:
        reason = self._info.get("reason")
        return None if reason is None else str(reason)

    @property
    def endpoints(self) -> dict[str, dict[str, Any]]:
        """Python method name → `{"method", "path", "streaming", "url", "description"}`."""
        return dict(self._routes)

    def info(self) -> dict[str, Any]:
        """What the service says of itself (owner only): start date, up time, initializer arguments, API."""
        app = bool((self._info.get("api") or {}).get("http_app"))  # an app's /info is its own (docs/APPS.md)
        return self._client.service_info(self._info["route_prefix"], app=app)

    def options(self, *, multiplexed_model_id: str | None = None) -> Deployment:
        """This deployment with other call options; it shares this one's connections. `multiplexed_model_id` names
        the model its calls are for (the `fnserve-model-id` header; Ray Serve's
        `handle.options(multiplexed_model_id=...)`): the gateway sends them to a replica that holds it.

        Example:
            >>> deployment.options(multiplexed_model_id="customer-42").predict(text="hi")
        """
        if multiplexed_model_id is not None and (not isinstance(multiplexed_model_id, str) or not multiplexed_model_id):
            raise ValueError(f"multiplexed_model_id must be a non-empty string, got {multiplexed_model_id!r}")
        other = copy.copy(self)  # the same connections, through `_root`
        other._model_id = multiplexed_model_id
        return other

    def refresh(self) -> Deployment:
        self._info = self._client.get_service(self.service_id)
        return self

    def __repr__(self) -> str:
        return f"<Deployment {self.name!r} {self.state} at {self.address}>"

    def __str__(self) -> str:
        lines = [
            f"Deployment {self.name}",
            f"  id:        {self.service_id}",
            f"  address:   {self.address}",
            f"  state:     {self.state}" + (f" ({self.reason.splitlines()[0]})" if self.reason else ""),
        ]
        if self.token:
            lines.append(f"  token:     {self.token}  (shown once; keep it)")
        lines.append("  endpoints:")
        for python_name, endpoint in self._routes.items():
            stream = "  (streaming)" if endpoint["streaming"] else ""
            lines.append(f"    {endpoint['method']:6} {endpoint['path']:24} .{python_name}(){stream}")
        return "\n".join(lines)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def wait(self, timeout_s: float | None = 60.0) -> Deployment:
        """Block until ACTIVE. Raises DeploymentFailed with the reason on ERROR, ServiceDisabled when the service is
        disabled (a version deployed to it waits for `enable()`), TimeoutError on time-out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.refresh()
            if self.state == "ACTIVE":
                return self
            if self.state == "ERROR":
                raise DeploymentFailed(f"Service {self.name!r} failed to deploy: {self.reason}")
            if self.state == "INACTIVE":
                raise DeploymentFailed(f"Service {self.name!r} is INACTIVE ({self.reason}); deploy it again")
            if self.state == "DISABLED":
                raise ServiceDisabled(
                    f"Service {self.name!r} is disabled by its owner, so its version {self._info['version']} does not "
                    f"run; `fnserve enable {self.name}` (or `.enable()`) starts it"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"Service {self.name!r} is still {self.state} after {timeout_s:g} s; "
                    f"see `fnserve ls` and its replica logs"
                )
            time.sleep(_POLL_INTERVAL_S)

    def teardown(self) -> Deployment:
        """Stop the service (calls in progress finish first); it becomes INACTIVE."""
        self._info = self._client.teardown(self.service_id)
        return self

    def disable(self) -> Deployment:
        """Stop the service's replicas (calls in progress finish first) and refuse its calls with `ServiceDisabled`
        until `enable()`; it keeps its versions, tokens and queued jobs. It becomes DISABLED."""
        self._info = self._client.disable(self.service_id)
        return self

    def enable(self) -> Deployment:
        """Start a disabled service again as it was; `wait()` then blocks until it is ACTIVE.

        Example:
            >>> deployment.disable().enable().wait().hello(number=7)
            'Hello, world! My favorite number is 7'
        """
        self._info = self._client.enable(self.service_id)
        return self

    def close(self) -> None:
        """Close the HTTP connections (the service keeps running)."""
        self._client.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Deployment:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        self.close()

    # -- calling endpoints -----------------------------------------------------------------------------------

    def _is_streaming(self, path: str, method: str) -> bool:
        return any(e["path"] == path and e["method"] == method and e["streaming"] for e in self._routes.values())

    def _async(self) -> AsyncClient:
        root = self._root
        if root._async_client is None:
            root._async_client = AsyncClient(self._client.url, api_key=self._client.api_key)
        return root._async_client

    def call(
        self,
        path: str,
        /,
        method: str = "POST",
        *,
        assets: Sequence[str] | None = None,
        accept: str | None = None,
        **arguments: Any,
    ) -> Any:
        """Call a route by its path: the result, or an iterator of chunks for a streaming route. `path` is positional
        only, so an argument may have that name (a catch-all's `path`).

        `assets` names uploaded assets (`client.upload_asset(...)["asset_id"]`) that the endpoint reads through its
        `_assets` parameter; `accept` is the call's Accept header (`application/x-npy` for a numpy array as .npy).
        The multiplexed model it is for, if any, is the one given to `options`.
        """
        method = method.upper()
        url_path = _fill_path(path, arguments)
        if self._is_streaming(path, method):
            if assets:
                raise TypeError(f"{method} {path} streams; assets go with calls that do not stream")
            return self._client.stream(self._info["route_prefix"], url_path, method, arguments, model_id=self._model_id)
        return self._client.invoke(
            self._info["route_prefix"],
            url_path,
            method,
            arguments,
            assets=assets,
            accept=accept,
            model_id=self._model_id,
        )

    async def acall(
        self,
        path: str,
        /,
        method: str = "POST",
        *,
        assets: Sequence[str] | None = None,
        accept: str | None = None,
        **arguments: Any,
    ) -> Any:
        """The async twin of `call`; a streaming route gives an async iterator (use `async for`)."""
        method = method.upper()
        url_path = _fill_path(path, arguments)
        if self._is_streaming(path, method):
            if assets:
                raise TypeError(f"{method} {path} streams; assets go with calls that do not stream")
            return self._async().stream(
                self._info["route_prefix"], url_path, method, arguments, model_id=self._model_id
            )
        return await self._async().invoke(
            self._info["route_prefix"],
            url_path,
            method,
            arguments,
            assets=assets,
            accept=accept,
            model_id=self._model_id,
        )

    def submit(
        self,
        path: str,
        method: str = "POST",
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
        **arguments: Any,
    ) -> Job:
        """Queue a call of a route as a job (docs/JOBS.md); returns its `Job` at once.

        Args:
            path: the route, e.g. `/users/{user_id}` (path parameters are taken from `arguments`).
            method: the route's HTTP method.
            assets: ids of uploaded assets the endpoint reads.
            policy: overrides of the service's job limits, e.g. `{"timeout_s": 600, "ttl_s": 3600}`.
            **arguments: the endpoint's arguments, validated now (a bad one raises ValidationFailed here).
        """
        method = method.upper()
        self._refuse_streaming(path, method)
        url_path = _fill_path(path, arguments)
        prefix = jobs_prefix(self._info)
        queued = self._client.submit(prefix, url_path, method, arguments, assets=assets, policy=policy)
        return Job(self._client, prefix, queued["id"], queued)

    async def asubmit(
        self,
        path: str,
        method: str = "POST",
        *,
        assets: Sequence[str] | None = None,
        policy: dict[str, Any] | None = None,
        **arguments: Any,
    ) -> AsyncJob:
        """The async twin of `submit`: `job = await deployment.asubmit("/hello", message="hi")`."""
        method = method.upper()
        self._refuse_streaming(path, method)
        url_path = _fill_path(path, arguments)
        prefix = jobs_prefix(self._info)
        queued = await self._async().submit(prefix, url_path, method, arguments, assets=assets, policy=policy)
        return AsyncJob(self._async(), prefix, queued["id"], queued)

    def job(self, job_id: str) -> Job:
        """A handle on a job of this service submitted earlier (e.g. by another process), by its id."""
        return Job(self._client, jobs_prefix(self._info), job_id)

    def ajob(self, job_id: str) -> AsyncJob:
        """The async twin of `job`."""
        return AsyncJob(self._async(), jobs_prefix(self._info), job_id)

    def _refuse_streaming(self, path: str, method: str) -> None:
        if self._is_streaming(path, method):
            raise TypeError(f"{method} {path} streams, and streaming endpoints cannot be queued; call it directly")
        if self._model_id is not None:  # the server refuses it too: jobs do not carry a model id
            raise TypeError(
                f"a model id ({self._model_id!r}) applies to direct calls, not to jobs; call {path} directly, or pass "
                "the model id to the job as an argument"
            )

    async def aclose(self) -> None:
        """Close the async twin's connections (`close()` closes the sync ones)."""
        if self._root._async_client is not None:
            await self._root._async_client.aclose()

    def __getattr__(self, name: str) -> Any:
        routes = self.__dict__.get("_routes", {})
        if name in routes:
            endpoint = routes[name]
            return _RouteMethod(self, endpoint, is_async=False)
        if name.startswith("a") and name[1:] in routes:
            return _RouteMethod(self, routes[name[1:]], is_async=True)
        raise AttributeError(
            f"{type(self).__name__} has no attribute or endpoint {name!r}; endpoints: {', '.join(routes) or 'none'}"
        )

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._routes, *(f"a{name}" for name in self._routes)]


class _RouteMethod:
    """One route as a method: call it (`deployment.hello(...)`), or queue it (`deployment.hello.submit(...)`).

    `_assets=["ast-…"]` names uploaded assets for either; it is the name of the endpoint's reserved parameter,
    so it never hides an argument of the endpoint. `_accept="application/x-npy"` asks for an answer other than JSON
    (a numpy array as .npy, a PIL image as `image/jpeg`), given back as an `fs.Response`. `_model_id="m1"` names the
    multiplexed model the call is for (as `deployment.options(multiplexed_model_id=...)`). `_policy={...}` overrides
    a job's limits.
    """

    def __init__(self, deployment: Deployment, endpoint: dict[str, Any], *, is_async: bool) -> None:
        self._deployment = deployment
        self._endpoint = endpoint
        self._is_async = is_async
        self.__doc__ = endpoint.get("description") or None

    def __call__(
        self,
        *,
        _assets: Sequence[str] | None = None,
        _accept: str | None = None,
        _model_id: str | None = None,
        **arguments: Any,
    ) -> Any:
        path, method = self._endpoint["path"], self._endpoint["method"]
        deployment = self._deployment if _model_id is None else self._deployment.options(multiplexed_model_id=_model_id)
        if self._is_async:
            return deployment.acall(path, method, assets=_assets, accept=_accept, **arguments)
        return deployment.call(path, method, assets=_assets, accept=_accept, **arguments)

    def submit(
        self, *, _assets: Sequence[str] | None = None, _policy: dict[str, Any] | None = None, **arguments: Any
    ) -> Any:
        """Queue this call as a job: a `Job` (for the async method, `ahello`, an awaitable `AsyncJob`)."""
        path, method = self._endpoint["path"], self._endpoint["method"]
        if self._is_async:
            return self._deployment.asubmit(path, method, assets=_assets, policy=_policy, **arguments)
        return self._deployment.submit(path, method, assets=_assets, policy=_policy, **arguments)


def _fill_path(path: str, arguments: dict[str, Any]) -> str:
    """`/users/{user_id}` with user_id=3 → `/users/3` (the argument moves from the body into the path). A catch-all
    (`/files/{rest:path}`, a class's `__call__`) takes its rest as it is, slashes included, and "" when not given."""

    def replace(match: re.Match[str]) -> str:
        name, converter = match.group(1), match.group(2)
        if name not in arguments:
            if converter == "path":
                return ""
            raise TypeError(f"missing path argument {name!r} for {path}")
        value = str(arguments.pop(name))
        return value.lstrip("/") if converter == "path" else value

    filled = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}", replace, path)
    if path.endswith(":path}") and filled != "/":
        filled = filled.removesuffix("/")  # `/files/` with no rest is `/files`, which the route takes too
    return filled
