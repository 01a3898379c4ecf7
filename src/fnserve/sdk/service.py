"""The decorators users write: `@fs.service` on an initializer or a class, and its endpoints.

A `Service` keeps the user's initializer and endpoint functions untouched, so they stay plain
callables for unit tests, and derives the `ServiceSpec` the server needs from them.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from fnserve._units import parse_duration
from fnserve.apps.load import factory_kind
from fnserve.composition.batch import BatchOptions, batch_options, item_view
from fnserve.errors import SpecError
from fnserve.sdk.environment import Environment
from fnserve.sdk.health import HEALTH_METHOD, HealthCheck, build_health_check
from fnserve.sdk.introspect import (
    CallKind,
    arguments_schema,
    call_kind,
    describe_parameters,
    first_paragraph,
    request_parameter,
    return_schema,
    return_type_name,
    split_docstring,
)
from fnserve.spec import (
    HTTP_METHODS,
    Autoscaling,
    CommandSpec,
    EndpointSpec,
    HttpMethod,
    Resources,
    RetryPolicy,
    ServiceSpec,
    check_endpoint_path,
    check_route_prefix,
    check_service_name,
    path_parameters,
)

if TYPE_CHECKING:
    from fnserve.composition.graph import Application

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_ENDPOINT_MARK = "__fnserve_endpoint__"
# The route of a class served by its `__call__`: every path under its prefix, `path` being the rest.
CALL_PATH = "/{path:path}"
_MEDIA_TYPE = re.compile(r"^[!-~]+/[ -~]+$")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as the replica runs it: the user's function and its spec."""

    function: Callable[..., Any]
    spec: EndpointSpec
    call_kind: CallKind
    is_method: bool
    # `@fs.batch`: its live options, the one-item stand-in its spec was built from, and its shared parameters
    batch: BatchOptions | None = None
    item_view: Callable[..., Any] | None = None
    shared: frozenset[str] = frozenset()
    route: _EndpointOptions | None = None  # how it was declared, to rebuild it (Service._batched_later)

    @property
    def signature(self) -> Callable[..., Any]:
        """What callers' arguments are read by: the function, or a batched function's one-item view."""
        return self.function if self.item_view is None else self.item_view


@dataclass(frozen=True)
class _EndpointOptions:
    path: str
    method: HttpMethod
    streaming: bool
    retry: RetryPolicy | None
    request_timeout_s: float | None
    media_type: str | None = None
    max_body_bytes: int | None = None


def _check_route_options(
    path: str,
    method: str,
    streaming: bool,
    retry: RetryPolicy | None,
    request_timeout: float | str | None,
    media_type: str | None = None,
    max_body_bytes: int | None = None,
) -> _EndpointOptions:
    try:
        check_endpoint_path(path)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise SpecError(f"method must be one of {', '.join(HTTP_METHODS)} (any case), got {method!r}")
    if not isinstance(streaming, bool):
        raise SpecError(f"streaming must be True or False, got {streaming!r}")
    if media_type is not None:
        if not isinstance(media_type, str) or not _MEDIA_TYPE.match(media_type):
            raise SpecError(f"media_type must be a MIME type like 'audio/wav', got {media_type!r}")
        if not streaming:
            raise SpecError(
                f"media_type={media_type!r} is for streaming endpoints; a function that returns one answer returns "
                f"fs.Response(content, media_type={media_type!r}) instead"
            )
    if max_body_bytes is not None and (
        isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or not 0 < max_body_bytes <= 10**9
    ):
        raise SpecError(
            f"max_body_bytes must be a number of bytes from 1 to 1000000000, got {max_body_bytes!r}; "
            "use None for the server's limit (FNSERVE_MAX_BODY_BYTES)"
        )
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise SpecError(f"retry must be fs.RetryPolicy(...), got {retry!r}")
    try:
        timeout_s = None if request_timeout is None else parse_duration(request_timeout, field="request_timeout")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return _EndpointOptions(
        path=path,
        method=cast(HttpMethod, method.upper()),
        streaming=streaming,
        retry=retry,
        request_timeout_s=timeout_s,
        media_type=media_type,
        max_body_bytes=max_body_bytes,
    )


def _build_endpoint(
    function: Callable[..., Any], options: _EndpointOptions, *, is_method: bool, serves_prefix: bool = False
) -> Endpoint:
    if not callable(function):
        raise SpecError(f"an endpoint must be a function, got {function!r}")
    batching = batch_options(function)
    if batching is None:
        view, shared = None, frozenset[str]()
    else:  # callers see one item: the spec, validation and docs are read off a one-item view of the function
        view, shared = item_view(function, is_method=is_method)
        function = view
    name = getattr(function, "__qualname__", repr(function))
    kind = call_kind(function)
    if options.streaming and not kind.streams:
        raise SpecError(
            f"endpoint {name}() is declared streaming=True but is not a generator; use `yield` to produce chunks"
        )
    if kind.streams and not options.streaming:
        raise SpecError(
            f"endpoint {name}() is a generator; declare it with streaming=True to stream its chunks, "
            "or return a value instead of yielding"
        )
    try:
        parameters, var_kwargs = describe_parameters(function, skip_first=is_method)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    takes_request = request_parameter(function)
    for placeholder in path_parameters(options.path):
        # A function that reads the request (or a class's `__call__`) may leave a placeholder out: it is matched,
        # and the path is in `request.path`.
        if placeholder not in parameters and not var_kwargs and not (serves_prefix or takes_request):
            raise SpecError(
                f"path {options.path!r} names {{{placeholder}}} but {name}() has no parameter {placeholder!r}; "
                "add it to the function's signature"
            )
        if placeholder in parameters:
            parameters[placeholder] = parameters[placeholder].model_copy(update={"location": "path"})
    try:
        description, operation = split_docstring(function.__doc__, route=f"{options.method} {options.path}")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    spec = EndpointSpec(
        path=options.path,
        method=options.method,
        streaming=options.streaming,
        function_name=name,
        description=description,
        parameters=parameters,
        var_kwargs=var_kwargs,
        return_type=return_type_name(function),
        openapi=operation,
        retry=options.retry,
        asynchronous=kind in (CallKind.coroutine, CallKind.async_generator),
        request_timeout_s=options.request_timeout_s,
        media_type=options.media_type,
        max_body_bytes=options.max_body_bytes,
        request_parameter=takes_request,
        batch=None if batching is None else batching.spec,
    )
    spec = spec.model_copy(
        update={
            "arguments_schema": arguments_schema(function, spec),
            "return_schema": None if options.streaming else return_schema(function),
        }
    )
    if view is not None:
        return Endpoint(
            function=view.__wrapped__,  # type: ignore[attr-defined]
            spec=spec,
            call_kind=kind,
            is_method=is_method,
            batch=batching,
            item_view=view,
            shared=shared,
            route=options,
        )
    return Endpoint(function=function, spec=spec, call_kind=kind, is_method=is_method, route=options)


class Service(Generic[T]):
    """A service: an initializer (function or class) plus its endpoints and options.

    Calling the service calls the initializer, so it stays usable in plain unit tests.
    """

    def __init__(
        self,
        initializer: Callable[..., T],
        *,
        name: str | None = None,
        resources: Resources | None = None,
        replicas: int | None = None,
        route_prefix: str | None = None,
        auth: bool = True,
        time_limit: float | str | None = None,
        autoscaling: Autoscaling | None = None,
        max_ongoing_requests: int | None = None,
        max_queued_requests: int = 1024,
        retry: RetryPolicy | None = None,
        max_queued: int = 10_000,
        job_timeout: float | str = 3600.0,
        job_ttl: float | str = 86_400.0,
        result_retention: float | str = 1800.0,
        requirements: list[str] | None = None,
        env: str | Environment | None = None,
        python: str | None = None,
        uses: Sequence[str | Service[Any]] | None = None,
    ) -> None:
        if not callable(initializer):
            raise SpecError(f"@fs.service decorates a function or a class, got {initializer!r}")
        self.initializer = initializer
        self.is_class = inspect.isclass(initializer)
        self.name = name if name is not None else initializer.__name__
        self.route_prefix = route_prefix if route_prefix is not None else f"/{self.name}"
        try:
            check_service_name(self.name)
            check_route_prefix(self.route_prefix)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if resources is not None and not isinstance(resources, Resources):
            raise SpecError(f"resources must be fs.Resources(...), got {resources!r}")
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
            raise SpecError(f"replicas must be an int >= 0, got {replicas!r}")
        if autoscaling is not None and not isinstance(autoscaling, Autoscaling):
            raise SpecError(f"autoscaling must be fs.Autoscaling(...), got {autoscaling!r}")
        if autoscaling is not None and replicas is not None:
            raise SpecError(
                f"service {self.name!r} gives both replicas={replicas} and autoscaling; give one: a fixed count, or "
                "fs.Autoscaling(min_replicas=..., max_replicas=...)"
            )
        if not isinstance(auth, bool):
            raise SpecError(f"auth must be True or False, got {auth!r}")
        try:
            self.time_limit_s = None if time_limit is None else parse_duration(time_limit)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise SpecError(f"retry must be fs.RetryPolicy(...), got {retry!r}")
        self.job_options: dict[str, Any] = {
            "autoscaling": autoscaling,
            "max_ongoing_requests": max_ongoing_requests,
            "max_queued_requests": max_queued_requests,
            "retry": retry or RetryPolicy(),
            "max_queued": max_queued,
            "job_timeout_s": job_timeout,
            "job_ttl_s": job_ttl,
            "result_retention_s": result_retention,
        }
        # A named environment given as an object is created on the server when the service is deployed.
        self.environment = env if isinstance(env, Environment) else None
        if env is not None and not isinstance(env, str | Environment):
            raise SpecError(f"env must be an environment's name or fs.Environment(...), got {env!r}")
        self.environment_options: dict[str, Any] = {
            "requirements": list(requirements) if isinstance(requirements, list | tuple) else requirements,
            "env": env.name if isinstance(env, Environment) else env,
            "python": python,
        }
        # The services it calls through handles: names, or services (deployed with it: composition/graph.py).
        self.uses: tuple[str | Service[Any], ...] = _check_uses(self.name, uses)
        # SpecError now, not at deploy
        ServiceSpec(name=self.name, route_prefix=self.route_prefix, **self.job_options, **self.environment_options)
        self.resources = resources or Resources()
        self.replicas = (autoscaling.min_replicas if autoscaling is not None else 1) if replicas is None else replicas
        self.auth = auth
        self.description = first_paragraph(initializer.__doc__)
        # An app served whole (sdk/apps.py): set by fs.asgi_service; a function with no endpoints makes one.
        self.http_app: Literal["asgi", "wsgi", "command"] | None = None
        self.max_body_bytes: int | None = None
        self.command: CommandSpec | None = None  # a command's HTTP server (sdk/command.py)
        self._endpoints: list[Endpoint] = []
        if self.is_class:
            for attribute in _class_members(cast(type, initializer)):
                options = getattr(attribute, _ENDPOINT_MARK, None)
                if isinstance(options, _EndpointOptions):
                    self._add(_build_endpoint(attribute, options, is_method=True))
        method = getattr(initializer, HEALTH_METHOD, None) if self.is_class else None
        self.health: HealthCheck | None = None if method is None else build_health_check(method, is_method=True)
        if self.is_class and not self._endpoints:
            self._serve_call(cast(type, initializer))
        self.__doc__ = initializer.__doc__
        self.__name__ = getattr(initializer, "__name__", self.name)
        self.__qualname__ = getattr(initializer, "__qualname__", self.name)
        self.__module__ = getattr(initializer, "__module__", __name__)
        self.__wrapped__ = initializer

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        return self.initializer(*args, **kwargs)

    def _serve_call(self, cls: type) -> None:
        """A class with no `@fs.endpoint` method serves its whole route prefix with `__call__`, as in Ray Serve: every
        method, every path under the prefix (`/{path:path}`). With no `__call__` either it would serve nothing, so it
        is refused here rather than deployed ACTIVE with no route."""
        call = next((vars(klass)["__call__"] for klass in cls.__mro__[:-1] if "__call__" in vars(klass)), None)
        if call is None or not callable(call):
            raise SpecError(
                f"service {self.name!r} has no endpoint, so it would serve nothing; mark a method with "
                f'@fs.endpoint("/predict"), or define `__call__(self, request: fs.Request)` to serve every path under '
                f"{self.route_prefix}"
            )
        streaming = call_kind(call).streams
        for method in HTTP_METHODS:
            options = _check_route_options(CALL_PATH, method, streaming, None, None)
            self._add(_build_endpoint(call, options, is_method=True, serves_prefix=True))

    def __repr__(self) -> str:
        return f"<Service {self.name!r} at {self.route_prefix} with {len(self._endpoints)} endpoint(s)>"

    def run(
        self, *, host: str | None = None, port: int | None = None, home: str | Path | None = None, reload: bool = False
    ) -> None:
        """Serve this service from its file, in the foreground, as `fnserve run app.py:NAME [--reload]` does: a
        server on `host:port` (127.0.0.1:8000 by default), this service deployed to it, its panel and a curl
        printed; Ctrl-C stops everything. While fnserve itself imports the file (a deploy, a replica) it does
        nothing, so it may sit at the bottom of the file with or without `if __name__ == "__main__":`.

        Args:
            host: the interface to bind (`FNSERVE_HOST`, else 127.0.0.1).
            port: the port (`FNSERVE_PORT`, else 8000; 0 picks a free one).
            home: the state folder (`FNSERVE_HOME`, else ~/.fnserve).
            reload: deploy a new version whenever a file of the project changes (blue/green, on save).

        Example:
            >>> if __name__ == "__main__":
            ...     greeter.run(reload=True)
        """
        from fnserve.sdk.loader import importing_user_code

        if importing_user_code():
            return
        module = sys.modules.get(self.__module__)
        file = getattr(module, "__file__", None)
        if module is None or file is None:
            raise SpecError(
                f"{self.name}.run() serves the service from its file, and {self.__module__!r} has none (a notebook, "
                "the interactive prompt); there, deploy with fs.deploy(service)() to a running `fnserve server`"
            )
        attribute = next((name for name, value in vars(module).items() if value is self), None)
        target = f"{file}:{attribute}" if attribute else file
        from fnserve.client.cli_run import run_targets

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stopped the server in order: the script ends quietly
            run_targets([target], host=host, port=port, home=Path(home) if home is not None else None, reload=reload)

    def endpoint(
        self,
        path: str,
        *,
        method: str = "POST",
        streaming: bool = False,
        retry: RetryPolicy | None = None,
        request_timeout: float | str | None = None,
        media_type: str | None = None,
        max_body_bytes: int | None = None,
    ) -> Callable[[F], F]:
        """Register a function as a route of this service; the function itself is returned unchanged.

        Args:
            path: the route under the service's prefix, e.g. `"/predict"`, `"/users/{user_id}"`, `"/items/{n:int}"`,
                or a catch-all `"/files/{rest:path}"` (the rest of the path, slashes included); it matches with or
                without a trailing '/' (docs/HTTP.md, "Routing rules").
            method: GET, POST, PUT, PATCH or DELETE (any case).
            streaming: the function is a generator whose chunks are streamed as they are produced.
            retry: how its queued jobs are retried (default: the service's `retry`).
            request_timeout: a synchronous call running longer is cancelled in the replica and answered 504
                (seconds, or "30s", "2 minutes"; default: the server's invocation timeout).
            media_type: for a streaming endpoint, the content-type of its stream, e.g. `"audio/wav"`: its chunks
                (bytes) are sent raw with it. A function that returns one answer returns `bytes` or
                `fs.Response(content, media_type=...)` instead.
            max_body_bytes: the largest request body this endpoint takes (default: the server's,
                `FNSERVE_MAX_BODY_BYTES`, 5 MiB); a larger one is refused with 413 as it arrives.

        A parameter annotated `bytes` or `fs.File` (or `PIL.Image.Image`, `numpy.ndarray`: decoded) receives the
        request's raw body when its content type is not JSON (`curl --data-binary @cat.jpg -H 'content-type:
        image/jpeg'`), or a multipart part of its name; the other parameters then come from the query string or the
        form. A returned PIL image is sent as PNG, a numpy array as JSON or `.npy` by the caller's Accept.

        Parameters whose names match keys of the initializer's dict are filled from it when the
        caller leaves them out.

        Example:
            >>> @greeter.endpoint("/hello")
            ... def hello(message: str, number: int = 42) -> str:
            ...     return f"{message} My favorite number is {number}"
        """
        if self.is_class:
            raise SpecError(
                f"service {self.name!r} is a class; mark its methods with @fs.endpoint(...) instead of "
                f"@{self.name}.endpoint(...)"
            )
        options = _check_route_options(path, method, streaming, retry, request_timeout, media_type, max_body_bytes)

        def register(function: F) -> F:
            self._add(_build_endpoint(function, options, is_method=False))
            return function

        return register

    def health_check(self, function: F) -> F:
        """Register this function service's health check; the function itself is returned unchanged.

        The replica runs it each time the server pings it (every few seconds, in a thread of its own when it
        is not async). It fails by raising or returning False; after `Settings.health_failures` (3) failures in
        a row the replica is replaced. Like an endpoint, it receives the initializer's values by parameter name.
        A class service defines a `check_health(self)` method instead.

        Example:
            >>> @greeter.health_check
            ... def model_loaded(message: str) -> bool:
            ...     return bool(message)
        """
        if self.is_class:
            raise SpecError(
                f"service {self.name!r} is a class; define a `{HEALTH_METHOD}(self)` method instead of "
                f"@{self.name}.health_check"
            )
        if self.health is not None:
            raise SpecError(
                f"service {self.name!r} already has a health check, {self.health.name}(); keep one and check "
                "everything there"
            )
        self.health = build_health_check(function, is_method=False)
        return function

    def _add(self, endpoint: Endpoint) -> None:
        for existing in self._endpoints:
            if existing.spec.key == endpoint.spec.key:
                raise SpecError(
                    f"route {endpoint.spec.key} of service {self.name!r} is declared twice: by "
                    f"{existing.spec.function_name}() and {endpoint.spec.function_name}(); give one of them "
                    "another path or method"
                )
        self._endpoints.append(endpoint)
        self._check_batch_room(endpoint)

    def _check_batch_room(self, endpoint: Endpoint) -> None:
        """Warn when an explicit `max_ongoing_requests` keeps a batched endpoint's batches from filling."""
        limit = self.job_options["max_ongoing_requests"]
        if endpoint.batch is not None and limit is not None and limit < endpoint.batch.max_batch_size:
            warnings.warn(
                f"service {self.name!r} takes max_ongoing_requests={limit} calls per replica, fewer than "
                f"{endpoint.spec.function_name}()'s max_batch_size={endpoint.batch.max_batch_size}, so its batches "
                f"never fill; raise max_ongoing_requests to {2 * endpoint.batch.max_batch_size} (one batch runs while "
                "the next fills), or leave it out",
                stacklevel=4,
            )

    def _batched_later(self) -> None:
        """Rebuild a function's endpoint that `@fs.batch` marked after `@svc.endpoint` registered it (the decorators
        stacked the other way round), so both orders give the same endpoint."""
        for index, endpoint in enumerate(self._endpoints):
            if endpoint.batch is None and batch_options(endpoint.function) is not None:
                assert endpoint.route is not None
                self._endpoints[index] = rebuilt = _build_endpoint(endpoint.function, endpoint.route, is_method=False)
                self._check_batch_room(rebuilt)

    @property
    def endpoints(self) -> list[Endpoint]:
        self._batched_later()
        return list(self._endpoints)

    @property
    def spec(self) -> ServiceSpec:
        return ServiceSpec(
            name=self.name,
            description=self.description,
            kind="class" if self.is_class else "function",
            route_prefix=self.route_prefix,
            replicas=self.replicas,
            resources=self.resources,
            auth=self.auth,
            time_limit_s=self.time_limit_s,
            endpoints=[endpoint.spec for endpoint in self.endpoints],
            http_app=self.app_kind,
            max_body_bytes=self.max_body_bytes,
            uses=[used if isinstance(used, str) else used.name for used in self.uses],
            command=self.command,
            **self.job_options,
            **self.environment_options,
        )

    @property
    def app_kind(self) -> Literal["asgi", "wsgi", "command"] | None:
        """What app it serves whole, if any: fs.asgi_service's, or what a function with no endpoints returns (unless
        its return annotation says it is no app: docs/APPS.md)."""
        if self.http_app is not None or self.is_class or self._endpoints:
            return self.http_app
        return factory_kind(self.initializer)

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """Ray Serve's form: `Ingress.bind(Model.bind())` is an application whose bound services reach the
        initializer as handles; `fs.deploy(app)` deploys the graph (composition/graph.py)."""
        from fnserve.composition.graph import Application

        return Application(self, args, kwargs)

    def check_init_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise TypeError, as a call would, unless the initializer accepts these arguments."""
        target: Callable[..., Any] = self.initializer
        try:
            inspect.signature(target).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(...) cannot take these arguments: {exc}") from None


def _check_uses(name: str, uses: Sequence[str | Service[Any]] | None) -> tuple[str | Service[Any], ...]:
    if uses is None:
        return ()
    if isinstance(uses, str | Service) or not isinstance(uses, Sequence):
        raise SpecError(f"uses must be a list of service names or services, got {uses!r}; e.g. uses=['embedder']")
    for used in uses:
        if not isinstance(used, str | Service):
            raise SpecError(f"uses of service {name!r} takes service names or services, got {used!r}")
    return tuple(uses)


def _class_members(cls: type) -> list[Any]:
    seen: set[str] = set()
    members = []
    for klass in cls.__mro__:
        for key, value in vars(klass).items():
            if key not in seen:
                seen.add(key)
                members.append(value)
    return members


@overload
def service(initializer: Callable[..., T], /) -> Service[T]: ...


@overload
def service(
    *,
    name: str | None = None,
    resources: Resources | None = None,
    replicas: int | None = None,
    route_prefix: str | None = None,
    auth: bool = True,
    time_limit: float | str | None = None,
    autoscaling: Autoscaling | None = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int = 1024,
    retry: RetryPolicy | None = None,
    max_queued: int = 10_000,
    job_timeout: float | str = 3600.0,
    job_ttl: float | str = 86_400.0,
    result_retention: float | str = 1800.0,
    requirements: list[str] | None = None,
    env: str | Environment | None = None,
    python: str | None = None,
    uses: Sequence[str | Service[Any]] | None = None,
) -> Callable[[Callable[..., T]], Service[T]]: ...


def service(
    initializer: Callable[..., T] | None = None,
    /,
    *,
    name: str | None = None,
    resources: Resources | None = None,
    replicas: int | None = None,
    route_prefix: str | None = None,
    auth: bool = True,
    time_limit: float | str | None = None,
    autoscaling: Autoscaling | None = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int = 1024,
    retry: RetryPolicy | None = None,
    max_queued: int = 10_000,
    job_timeout: float | str = 3600.0,
    job_ttl: float | str = 86_400.0,
    result_retention: float | str = 1800.0,
    requirements: list[str] | None = None,
    env: str | Environment | None = None,
    python: str | None = None,
    uses: Sequence[str | Service[Any]] | None = None,
) -> Service[T] | Callable[[Callable[..., T]], Service[T]]:
    """Turn an initializer function, or a class, into a service.

    The initializer runs once per replica. A function returns a dict whose values are injected
    into endpoint parameters of the same name; a class's `__init__` sets up `self`, and its
    methods marked with `@fs.endpoint(...)` are the routes. A class with no marked method is served
    by its `__call__` (Ray Serve style: every method and every path under the prefix), and refused
    when it has none. The docstring becomes the service description.

    Health: a class's `check_health(self)` method, or a function registered with
    `@svc.health_check`, runs in the replica at each of the server's health pings; raising or
    returning False fails it, and a replica that fails three in a row is replaced.

    Args:
        name: the service name (default: the function or class name).
        resources: what one replica needs, `fs.Resources(num_cpus=1, memory="1GB", num_gpus=0)`.
        replicas: how many replicas to run (default 1); or instead:
        autoscaling: `fs.Autoscaling(min_replicas, max_replicas, target_ongoing_requests, ...)`, replicas following
            the load, down to zero when `min_replicas=0`.
        max_ongoing_requests: calls one replica takes at once (default 8, or 64 when every endpoint is async);
            more wait in the gateway, in order.
        max_queued_requests: calls that may wait for a slot (default 1024); one more is a 503.
        route_prefix: where the service lives on the gateway (default `/<name>`).
        auth: require an invocation token (default True); False makes the service public.
        time_limit: tear the service down after this long: seconds, "30 minutes", "2h".
        retry: how queued jobs are retried, `fs.RetryPolicy(max_attempts=3, ...)` (docs/JOBS.md).
        max_queued: queued jobs the service holds at most (all versions); one more is a 429.
        job_timeout: how long one attempt of a job may run before it is cancelled (TIMED_OUT).
        job_ttl: how long a job may wait in the queue before it is TIMED_OUT unstarted.
        result_retention: how long a finished job and its result are kept.
        requirements: pip requirements its replicas need, `["scikit-learn==1.9.1", "numpy>=2"]`: the server builds a
            venv of them with uv (cached, shared by services asking for the same set), and replicas see those
            packages and nothing of the server's. Without it, `fnserve deploy` uses the project's requirements.txt
            or pyproject.toml dependencies, if any (docs/ENVIRONMENTS.md).
        env: a named environment instead (`fnserve env create NAME -r requirements.txt`, or `fs.Environment(...)`,
            which deploying creates).
        python: the Python version of its environment, e.g. "3.11" (default: the server's).
        uses: the services it calls through `fs.handle(...)`, by name or as services; a call to any other is
            refused (`forbidden`). Services given as objects are deployed with it (docs/COMPOSITION.md).

    Example:
        >>> import fnserve as fs
        >>> @fs.service(replicas=2)
        ... def greeter(message: str = "Hello, world!") -> dict[str, str]:
        ...     '''Greets people.'''
        ...     return {"message": message}
    """

    def decorate(target: Callable[..., T]) -> Service[T]:
        return Service(
            target,
            name=name,
            resources=resources,
            replicas=replicas,
            route_prefix=route_prefix,
            auth=auth,
            time_limit=time_limit,
            autoscaling=autoscaling,
            max_ongoing_requests=max_ongoing_requests,
            max_queued_requests=max_queued_requests,
            retry=retry,
            max_queued=max_queued,
            job_timeout=job_timeout,
            job_ttl=job_ttl,
            result_retention=result_retention,
            requirements=requirements,
            env=env,
            python=python,
            uses=uses,
        )

    return decorate if initializer is None else decorate(initializer)


def endpoint(
    path: str,
    *,
    method: str = "POST",
    streaming: bool = False,
    retry: RetryPolicy | None = None,
    request_timeout: float | str | None = None,
    media_type: str | None = None,
    max_body_bytes: int | None = None,
) -> Callable[[F], F]:
    """Mark a method of a class service as a route (the class form of `Service.endpoint`).

    Example:
        >>> import fnserve as fs
        >>> @fs.service
        ... class Counter:
        ...     def __init__(self, start: int = 0) -> None:
        ...         self.count = start
        ...     @fs.endpoint("/increment")
        ...     def increment(self, by: int = 1) -> int:
        ...         self.count += by
        ...         return self.count
    """
    options = _check_route_options(path, method, streaming, retry, request_timeout, media_type, max_body_bytes)

    def mark(function: F) -> F:
        setattr(function, _ENDPOINT_MARK, options)
        return function

    return mark
