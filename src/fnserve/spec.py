"""The data that describes a service: resources, endpoints and options.

Everything here crosses a process boundary (client → server → replica) or is persisted, so each
piece is a frozen pydantic model with a constraint on every field. Invalid values raise `SpecError`
with a message that names the value and the fix.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fnserve._units import parse_duration, parse_memory
from fnserve.envs.requirements import check_env_name, check_python_version, check_requirements
from fnserve.errors import SpecError

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
HTTP_METHODS: tuple[HttpMethod, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Paths a service answers itself (its docs, and its jobs: docs/JOBS.md); user endpoints may not take them.
RESERVED_PATHS = (
    "/ping",
    "/info",
    "/docs",
    "/docs/specs.json",
    "/execute",
    "/run",
    "/runsync",
    "/health",
    "/purge-queue",
    "/status",
    "/cancel",
    "/retry",
)
RESERVED_PATH_PREFIX = "/-/"
RESERVED_PATH_PREFIXES = (RESERVED_PATH_PREFIX, "/status/", "/cancel/", "/retry/")
# Top-level prefixes the server keeps for itself.
RESERVED_ROUTE_PREFIXES = ("/v1", "/-", "/ui", "/metrics", "/docs")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PATH_SEGMENT = re.compile(r"^(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+|\{[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z]+)?\})$")
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")
# What a `{name:converter}` placeholder matches, as Starlette writes them (`{name}` is `str`): the converter decides
# which paths match, the parameter's annotation its type. `path` takes the rest of the path, slashes included, so it
# may only end a path: `/files/{rest:path}` owns everything under `/files/` (docs/HTTP.md, "Routing rules").
PATH_CONVERTERS = {
    "str": "[^/]+",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "path": ".*",
}


class _Spec(BaseModel):
    """Base of every spec: frozen, strict about unknown fields, and failing with `SpecError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(_describe(type(self).__name__, exc)) from None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Our __init__ is for Python callers (SpecError with the fix). When pydantic validates data (a request body,
        # a nested field) it must not go through it, so that errors keep their field locations.
        cls.__pydantic_custom_init__ = False
        cls.model_rebuild(force=True)


def _describe(model: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or model
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"`{where}`: {message} (got {error.get('input')!r})")
    return f"Invalid {model}: " + "; ".join(problems)


def path_parameters(path: str) -> list[str]:
    """Names of the `{placeholders}` in an endpoint path, in order (`{rest:path}` names `rest`)."""
    return [name for name, _ in _PATH_PARAM.findall(path)]


def path_placeholders(path: str) -> list[tuple[str, str]]:
    """The `{placeholders}` of an endpoint path as (name, converter) pairs, `str` when none is written."""
    return [(name, converter or "str") for name, converter in _PATH_PARAM.findall(path)]


def is_catch_all(path: str) -> bool:
    """Whether a path ends with a `{name:path}` placeholder: it owns every path under its start."""
    return path.endswith(":path}")


def openapi_path(path: str) -> str:
    """A path as OpenAPI writes it, with no converters: `/files/{rest:path}` → `/files/{rest}`."""
    return _PATH_PARAM.sub(lambda found: "{" + found.group(1) + "}", path)


def path_pattern(path: str, captured: frozenset[str] | None = None) -> str:
    """The regular expression a templated path matches, anchored, with or without a trailing '/' (Ray Serve and
    Allonia routes are written both ways). Placeholders in `captured` (all when None) become named groups; a
    `{rest:path}` after a '/' also matches nothing at all (`/files/{rest:path}` takes `/files`, its group unset)."""
    body = path.removesuffix("/")
    pattern, end = "", 0
    for found in _PATH_PARAM.finditer(body):
        name, converter = found.group(1), found.group(2) or "str"
        literal = body[end : found.start()]
        regex = PATH_CONVERTERS[converter]
        group = f"(?P<{name}>{regex})" if captured is None or name in captured else f"(?:{regex})"
        if converter == "path" and literal.endswith("/"):
            pattern += re.escape(literal[:-1]) + f"(?:/{group})?"
        else:
            pattern += re.escape(literal) + group
        end = found.end()
    return "^" + pattern + re.escape(body[end:]) + "/?$"


class Resources(_Spec):
    """What one replica of a service needs.

    Example:
        >>> Resources(num_cpus=2, memory="4GB", num_gpus=1, gpu_type="A100").memory
        4000000000
    """

    num_cpus: float = Field(default=1, gt=0, le=1024)
    memory: int | None = Field(default=None, gt=0, description="bytes; accepts '512MB', '4GB', '2GiB'")
    num_gpus: float = Field(default=0, ge=0, le=64)
    gpu_type: str | None = Field(default=None, max_length=64)

    def __init__(
        self,
        num_cpus: float = 1,
        memory: int | str | None = None,
        num_gpus: float = 0,
        gpu_type: str | None = None,
    ) -> None:
        super().__init__(num_cpus=num_cpus, memory=memory, num_gpus=num_gpus, gpu_type=gpu_type)

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)


class RetryPolicy(_Spec):
    """How a queued job is retried. A lost replica or server always counts as a failed attempt; an exception
    raised by the endpoint is retried only with `retry_on_exception`.

    Example:
        >>> RetryPolicy(max_attempts=5, backoff_s=0.5).delay_before(3)
        1.0
    """

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff_s: float = Field(default=1.0, ge=0, le=3600, description="wait before the 2nd attempt; doubles after")
    max_backoff_s: float = Field(default=60.0, ge=0, le=86_400)
    retry_on_exception: bool = False

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 or more)."""
        return float(min(self.backoff_s * 2.0 ** max(attempt - 2, 0), self.max_backoff_s))


class Autoscaling(_Spec):
    """How many replicas a service runs, following its load: in-flight plus waiting requests and queued jobs per
    replica are kept near `target_ongoing_requests`. A scale-up holds for `upscale_delay_s`, a scale-down for
    `downscale_delay_s` (hysteresis); `min_replicas=0` stops every replica when idle, and the next call waits
    while one starts.

    Example:
        >>> Autoscaling(min_replicas=0, max_replicas=4, target_ongoing_requests=2).max_replicas
        4
    """

    min_replicas: int = Field(default=1, ge=0, le=256)
    max_replicas: int = Field(default=1, ge=1, le=256)
    target_ongoing_requests: float = Field(default=2.0, gt=0, le=10_000)
    upscale_delay_s: float = Field(default=1.0, ge=0, le=3600)
    downscale_delay_s: float = Field(default=30.0, ge=0, le=86_400)

    def __init__(
        self,
        min_replicas: int = 1,
        max_replicas: int = 1,
        target_ongoing_requests: float = 2.0,
        upscale_delay_s: float = 1.0,
        downscale_delay_s: float = 30.0,
    ) -> None:
        super().__init__(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target_ongoing_requests=target_ongoing_requests,
            upscale_delay_s=upscale_delay_s,
            downscale_delay_s=downscale_delay_s,
        )

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_replicas")
        if minimum is not None and value < minimum:
            raise ValueError(f"max_replicas ({value}) must be >= min_replicas ({minimum})")
        return value


# Replica slots by default: a sync endpoint holds a thread per call; coroutines only wait, so they take many more.
DEFAULT_MAX_ONGOING_SYNC = 8
DEFAULT_MAX_ONGOING_ASYNC = 64
# A service with batched endpoints takes this many batches' worth of calls per replica by default: one batch runs
# while the next one fills (composition/batching.py).
BATCHES_IN_FLIGHT = 2


class BatchSpec(_Spec):
    """How an endpoint's calls are gathered into one call of its function (`@fs.batch`): the defaults each replica
    starts with; `set_max_batch_size` / `set_batch_wait_timeout_s` change them live in the replica."""

    max_batch_size: int = Field(default=32, ge=1, le=10_000)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0, le=60)


class ParameterSpec(_Spec):
    """One endpoint parameter, as `/info` and `_api` show it."""

    type: str = Field(max_length=500)
    default: Any = None
    has_default: bool = False
    auto: bool = Field(default=False, description="supplied by the initializer when the caller leaves it out")
    location: Literal["path", "body", "file"] = Field(
        default="body", description='"file": annotated bytes or fs.File, so it may take a raw (non-JSON) body'
    )


class EndpointSpec(_Spec):
    """One route of a service: method + path, how it answers, and its parameters."""

    path: str
    method: HttpMethod = "POST"
    streaming: bool = False
    function_name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    var_kwargs: bool = False
    return_type: str = Field(default="Any", max_length=500)
    # JSON Schemas made from the type hints where the code was decorated: the gateway validates arguments with
    # the first (None: the replica alone validates), and the service's OpenAPI document shows both.
    arguments_schema: dict[str, Any] | None = None
    return_schema: dict[str, Any] | None = None
    openapi: dict[str, Any] = Field(
        default_factory=dict, description="OpenAPI operation fields from the docstring's YAML after a '---' line"
    )
    retry: RetryPolicy | None = Field(default=None, description="for its jobs; None: the service's policy")
    asynchronous: bool = Field(default=False, description="a coroutine or async generator: needs no thread per call")
    request_timeout_s: float | None = Field(
        default=None, gt=0, le=86_400, description="a synchronous call running longer is cancelled: 504"
    )
    request_parameter: str | None = Field(
        default=None, max_length=200, description="its parameter annotated fs.Request: the body goes to it whole"
    )
    max_body_bytes: int | None = Field(
        default=None, gt=0, le=1_000_000_000, description="the largest request body it takes; None: the server's"
    )
    media_type: str | None = Field(
        default=None,
        min_length=3,
        max_length=200,
        pattern=r"^[!-~]+/[ -~]+$",
        description="a streaming endpoint's content-type: its chunks are sent raw with it, never as SSE",
    )
    batch: BatchSpec | None = Field(default=None, description="@fs.batch: concurrent calls run as one call")

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in HTTP_METHODS:
            return value.upper()
        raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)} (any case)")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        check_endpoint_path(value)
        return value

    @property
    def key(self) -> str:
        """`METHOD /path`, unique within a service."""
        return f"{self.method} {self.path}"

    @property
    def file_parameters(self) -> list[str]:
        """The parameters annotated `bytes` or `fs.File`: a raw body (any content type but JSON) goes to them."""
        return [name for name, parameter in self.parameters.items() if parameter.location == "file"]


def check_endpoint_path(path: str) -> None:
    """Raise ValueError unless `path` is a valid, unreserved endpoint path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"endpoint path must start with '/', got {path!r}; for example '/predict'")
    if path.removesuffix("/") in RESERVED_PATHS or path.startswith(RESERVED_PATH_PREFIXES) or path == "/-":
        raise ValueError(
            f"endpoint path {path!r} is reserved (reserved: {', '.join(RESERVED_PATHS)} and anything under "
            f"{', '.join(RESERVED_PATH_PREFIXES)}); choose another path"
        )
    if path != "/":
        # One trailing '/' is allowed (other platforms' routes have it: '/api/v1.0/predict/'); the gateway matches a
        # path with or without it either way (gateway/router.py).
        segments = path[1:].removesuffix("/").split("/")
        for segment in segments:
            if not _PATH_SEGMENT.match(segment):
                raise ValueError(
                    f"endpoint path {path!r} has an invalid segment {segment!r}; use letters, digits, '-', '_', "
                    "'.' and '{name}' or '{name:converter}' placeholders, with no empty segment (one trailing '/' is "
                    "allowed)"
                )
    placeholders = path_placeholders(path)
    names = [name for name, _ in placeholders]
    if len(names) != len(set(names)):
        raise ValueError(f"endpoint path {path!r} repeats a path parameter")
    for name, converter in placeholders:
        if converter not in PATH_CONVERTERS:
            raise ValueError(
                f"endpoint path {path!r} has an unknown converter in {{{name}:{converter}}}; use one of "
                f"{', '.join(PATH_CONVERTERS)}"
            )
        if converter == "path" and not path.endswith(f"{{{name}:path}}"):
            raise ValueError(
                f"endpoint path {path!r} has {{{name}:path}} before its end; a path placeholder takes the rest of the "
                f"path, so it ends one: '/files/{{{name}:path}}'"
            )


# NVIDIA Cloud Functions' names for a command's fields (REST), beside ours.
_COMMAND_FIELDS = {
    "inference_url": ("inference_url", "inferenceUrl"),
    "inference_port": ("inference_port", "inferencePort"),
    "health_uri": ("health_uri", "healthUri"),
    "startup_timeout_s": ("startup_timeout_s", "startupTimeoutS"),
}


class CommandSpec(_Spec):
    """A service that is an HTTP server run as a command (docs/COMMANDS.md): each replica runs `command` in the
    project's folder, waits until `health_uri` answers 2xx, and forwards every request under the route prefix to it.

    Example:
        >>> CommandSpec(command="python serve.py --port {port}", inference_url="/v1/completions").health_uri
        '/health'
    """

    command: str = Field(
        min_length=1,
        max_length=10_000,
        description="a shell command line; `{port}` (and $PORT) become the port it must listen on",
    )
    inference_url: str = Field(
        default="/",
        max_length=2000,
        validation_alias=AliasChoices(*_COMMAND_FIELDS["inference_url"]),
        description="the path its queued jobs are POSTed to (NVCF's inferenceUrl)",
    )
    inference_port: int | None = Field(
        default=None,
        ge=1,
        le=65_535,
        validation_alias=AliasChoices(*_COMMAND_FIELDS["inference_port"]),
        description="the port it listens on when fixed (NVCF's inferencePort); None: a free port, through {port}",
    )
    health_uri: str = Field(
        default="/health",
        max_length=2000,
        validation_alias=AliasChoices(*_COMMAND_FIELDS["health_uri"]),
        description="polled until it answers 2xx before the replica is READY (NVCF's healthUri)",
    )
    startup_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices(*_COMMAND_FIELDS["startup_timeout_s"]),
        description="how long it may take to turn healthy; then the replica fails with its output",
    )

    @field_validator("command")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command is blank; give the command line that starts the server")
        return value

    @field_validator("inference_url", "health_uri")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if not value.startswith("/") or any(character.isspace() for character in value):
            raise ValueError(
                f"must be a path starting with '/' and without spaces, e.g. '/v1/completions'; got {value!r}"
            )
        return value


class ServiceSpec(_Spec):
    """Everything the server needs to know about a service, apart from its code."""

    name: str
    description: str = Field(default="", max_length=20_000)
    kind: Literal["function", "class"] = "function"
    route_prefix: str
    replicas: int = Field(default=1, ge=0, le=256)
    resources: Resources = Field(default_factory=Resources)
    auth: bool = True
    time_limit_s: float | None = Field(default=None, gt=0)
    endpoints: list[EndpointSpec] = Field(default_factory=list)
    autoscaling: Autoscaling | None = None  # None: `replicas`, fixed
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, le=10_000, description="calls one replica takes at once; None: 8, or 64 when all async"
    )
    max_queued_requests: int = Field(default=1024, ge=0, le=1_000_000, description="calls waiting for a slot")
    # Queued jobs (docs/JOBS.md): how they are retried, how many may wait, how long each may run and wait to
    # start, and how long a finished one's result is kept.
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    max_queued: int = Field(default=10_000, ge=1, le=1_000_000)
    job_timeout_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    job_ttl_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    result_retention_s: float = Field(default=1800.0, gt=0, le=30 * 86_400)
    # Its own Python environment (docs/ENVIRONMENTS.md): pip requirements built into a venv by the server, or a named
    # environment made beforehand; None for both: the replica runs in the server's own environment.
    requirements: list[str] | None = Field(default=None, max_length=500)
    env: str | None = Field(default=None, max_length=63, description="a named environment (`fnserve env create`)")
    python: str | None = Field(default=None, max_length=16, description="e.g. '3.11'; None: the server's Python")
    # An app served whole (docs/APPS.md): the replica serves an ASGI app ("asgi"), a WSGI app ("wsgi") or a command's
    # HTTP server ("command") under the route prefix, every path and method but /-/...; it has no endpoints.
    http_app: Literal["asgi", "wsgi", "command"] | None = None
    max_body_bytes: int | None = Field(
        default=None, gt=0, le=100_000_000_000, description="an app's largest request body; None: the server's"
    )
    # The services its replicas may call through handles (composition/, docs/COMPOSITION.md); any other is forbidden.
    uses: list[str] = Field(default_factory=list, max_length=100)
    # A command's HTTP server (http_app "command"): what runs, where its health and inference paths are.
    command: CommandSpec | None = Field(default=None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _flat_command(cls, data: Any) -> Any:
        """NVCF's flat form, `{"command": "python serve.py --port {port}", "inferenceUrl": "/infer", "healthUri":
        "/health", ...}`, read as `command: {...}` with `http_app: "command"`."""
        if not isinstance(data, dict) or data.get("command") is None:
            return data
        data = dict(data)
        if isinstance(data["command"], str):
            command: dict[str, Any] = {"command": data["command"]}
            for field, names in _COMMAND_FIELDS.items():
                for name in names:
                    if name in data:
                        command[field] = data.pop(name)
            data["command"] = command
        data.setdefault("http_app", "command")
        return data

    @field_validator("command")
    @classmethod
    def _command_is_the_app(cls, value: CommandSpec | None, info: ValidationInfo) -> CommandSpec | None:
        if value is not None and info.data.get("http_app") != "command":
            raise ValueError(f"a command is served as http_app 'command', got http_app={info.data.get('http_app')!r}")
        if value is None and info.data.get("http_app") == "command":
            raise ValueError("http_app 'command' needs the command to run: command={'command': '...'}")
        return value

    @field_validator("requirements", mode="before")
    @classmethod
    def _check_requirements(cls, value: Any) -> list[str] | None:
        return None if value is None else check_requirements(value)

    @field_validator("uses")
    @classmethod
    def _check_uses(cls, value: list[str]) -> list[str]:
        for name in value:
            check_service_name(name)
        return value

    @field_validator("python")
    @classmethod
    def _check_python(cls, value: str | None) -> str | None:
        if value is not None:
            check_python_version(value)
        return value

    @field_validator("env")
    @classmethod
    def _check_env_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_env_name(value)
            if info.data.get("requirements") is not None:
                raise ValueError(f"give requirements or env={value!r}, not both; put the packages in the environment")
        return value

    @property
    def isolated(self) -> bool:
        """Whether its replicas run in an environment of their own rather than the server's."""
        return self.requirements is not None or self.env is not None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        check_service_name(value)
        return value

    @field_validator("route_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        check_route_prefix(value)
        return value

    @field_validator("time_limit_s", "job_timeout_s", "job_ttl_s", "result_retention_s", mode="before")
    @classmethod
    def _parse_durations(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    def retry_policy(self, endpoint: EndpointSpec) -> RetryPolicy:
        return endpoint.retry or self.retry

    @property
    def default_max_ongoing_requests(self) -> int:
        if self.max_ongoing_requests is not None:
            return self.max_ongoing_requests
        batch_sizes = [endpoint.batch.max_batch_size for endpoint in self.endpoints if endpoint.batch is not None]
        if batch_sizes:  # enough calls in flight to fill a batch while the one before it runs
            base = (
                DEFAULT_MAX_ONGOING_ASYNC if all(e.asynchronous for e in self.endpoints) else DEFAULT_MAX_ONGOING_SYNC
            )
            return min(max(base, BATCHES_IN_FLIGHT * max(batch_sizes)), 10_000)
        if self.http_app == "asgi":  # an event loop of its own, which runs sync routes in its threads
            return DEFAULT_MAX_ONGOING_ASYNC
        if self.http_app == "command":  # a server of its own (an LLM server batches what it is given at once)
            return DEFAULT_MAX_ONGOING_ASYNC
        if self.endpoints and all(endpoint.asynchronous for endpoint in self.endpoints):
            return DEFAULT_MAX_ONGOING_ASYNC
        return DEFAULT_MAX_ONGOING_SYNC

    @field_validator("http_app")
    @classmethod
    def _app_has_no_endpoints(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("endpoints"):
            raise ValueError(f"a service serving an app ({value}) has no endpoints of its own; the app has the routes")
        return value

    @field_validator("endpoints")
    @classmethod
    def _unique_routes(cls, endpoints: list[EndpointSpec]) -> list[EndpointSpec]:
        seen: dict[str, str] = {}
        for endpoint in endpoints:
            if endpoint.key in seen:
                raise ValueError(
                    f"route {endpoint.key} is declared twice: by {seen[endpoint.key]}() and "
                    f"{endpoint.function_name}(); give one of them another path or method"
                )
            seen[endpoint.key] = endpoint.function_name
        return endpoints


def check_service_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"service name must be 1-63 letters, digits, '_', '-' or '.', starting with a letter or digit; got {name!r}"
        )


def check_route_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
        raise ValueError(f"route_prefix must start with '/' and not end with '/', got {prefix!r}; for example '/api'")
    if prefix == "/":
        return
    for reserved in RESERVED_ROUTE_PREFIXES:
        if prefix == reserved or prefix.startswith(reserved + "/"):
            raise ValueError(f"route_prefix {prefix!r} is reserved by the server ({reserved}); choose another")
    for segment in prefix[1:].split("/"):
        if not _PATH_SEGMENT.match(segment) or segment.startswith("{"):
            raise ValueError(f"route_prefix {prefix!r} has an invalid segment {segment!r}")


class DeploymentSpec(_Spec):
    """How a version runs: its hardware (a named instance type or explicit resources), its instance counts,
    and its share of the function's traffic."""

    instance_type: str | None = Field(default=None, max_length=64, description="a preset from /v1/instance-types")
    resources: Resources | None = Field(default=None, description="explicit resources, instead of an instance type")
    gpu: str | None = Field(default=None, max_length=64, description="the GPU type, e.g. 'A100'")
    min_instances: int = Field(default=1, ge=0, le=256)
    max_instances: int = Field(default=1, ge=1, le=256)
    max_request_concurrency: int | None = Field(
        default=None, ge=1, le=10_000, description="calls one replica takes at once; None: the service's default"
    )
    weight: int = Field(default=1, ge=0, le=1000, description="share of function-level traffic among ACTIVE versions")

    # Field validators (not a model validator) so a 422 names the field: `max_instances`, `resources`.
    @field_validator("resources")
    @classmethod
    def _one_kind_of_hardware(cls, value: Resources | None, info: ValidationInfo) -> Resources | None:
        if value is not None and info.data.get("instance_type") is not None:
            raise ValueError("give instance_type or resources, not both")
        return value

    @field_validator("max_instances")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_instances")
        if minimum is not None and value < minimum:
            raise ValueError(
                f"max_instances ({value}) must be >= min_instances ({minimum}); raise max_instances or lower "
                "min_instances"
            )
        return value

    @classmethod
    def for_service(cls, spec: ServiceSpec) -> DeploymentSpec:
        """How a service deploys by default: between its autoscaling bounds, or its fixed replica count."""
        if spec.autoscaling is not None:
            return cls(min_instances=spec.autoscaling.min_replicas, max_instances=spec.autoscaling.max_replicas)
        return cls(min_instances=spec.replicas, max_instances=max(1, spec.replicas))

    def hardware(self) -> tuple[str | None, Resources | None, str | None]:
        """What may not change while the deployment runs."""
        return (self.instance_type, self.resources, self.gpu)
