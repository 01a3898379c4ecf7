"""Decoration-time rules: options, routes and the spec derived from user code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import fnserve as fs
from fnserve.errors import SpecError


def make_service(**options: Any) -> fs.Service[dict[str, Any]]:
    def initializer() -> dict[str, Any]:
        return {}

    return fs.service(**options)(initializer)


def test_service_defaults_name_and_route_prefix_from_the_function() -> None:
    @fs.service
    def greeter(message: str = "Hello") -> dict[str, str]:
        """Greets people.

        More words.
        """
        return {"message": message}

    spec = greeter.spec
    assert spec.name == "greeter"
    assert spec.route_prefix == "/greeter"
    assert spec.description.startswith("Greets people.")
    assert spec.replicas == 1
    assert spec.auth is True


def test_service_stays_a_plain_callable() -> None:
    @fs.service(name="adder")
    def adder(base: int = 1) -> dict[str, int]:
        return {"base": base}

    @adder.endpoint("/add")
    def add(x: int, base: int) -> int:
        return x + base

    assert adder(base=3) == {"base": 3}
    assert add(2, base=3) == 5


def test_service_parses_resources_and_time_limit() -> None:
    svc = make_service(
        resources=fs.Resources(num_cpus=2, memory="12GB", num_gpus=1, gpu_type="A100"), time_limit="30 minutes"
    )
    assert svc.spec.resources.memory == 12_000_000_000
    assert svc.spec.resources.num_gpus == 1
    assert svc.spec.time_limit_s == 1800
    assert make_service(time_limit="2h").spec.time_limit_s == 7200
    assert make_service(time_limit=90).spec.time_limit_s == 90
    assert make_service(time_limit="1h 30m").spec.time_limit_s == 5400


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "bad name"}, "service name must be"),
        ({"route_prefix": "api"}, "route_prefix must start with '/'"),
        ({"route_prefix": "/api/"}, "not end with '/'"),
        ({"route_prefix": "/v1"}, "reserved"),
        ({"replicas": -1}, "replicas must be an int >= 0, got -1"),
        ({"auth": "yes"}, "auth must be True or False"),
        ({"time_limit": "soon"}, "`time_limit` must be a duration like"),
        ({"time_limit": -5}, "must be > 0"),
    ],
)
def test_service_refuses_invalid_options_naming_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_service(**options)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": "12 parsecs"}, "must be a size like"),
        ({"memory": -1}, "must be > 0"),
        ({"num_cpus": 0}, "num_cpus"),
        ({"num_gpus": -1}, "num_gpus"),
    ],
)
def test_resources_refuse_invalid_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        fs.Resources(**kwargs)


@pytest.mark.parametrize(
    ("path", "method", "message"),
    [
        ("hello", "POST", "must start with '/'"),
        ("/ping", "POST", "reserved"),
        ("/info", "GET", "reserved"),
        ("/docs", "GET", "reserved"),
        ("/docs/specs.json", "GET", "reserved"),
        ("/execute", "POST", "reserved"),
        ("/-/anything", "POST", "reserved"),
        ("/a//b", "POST", "invalid segment"),
        ("/hello", "FETCH", "method must be one of GET, POST, PUT, PATCH, DELETE"),
    ],
)
def test_endpoint_refuses_invalid_routes(path: str, method: str, message: str) -> None:
    svc = make_service()
    with pytest.raises(SpecError, match=message):
        svc.endpoint(path, method=method)


def test_endpoint_method_is_case_insensitive() -> None:
    svc = make_service()

    @svc.endpoint("/items", method="get")
    def items() -> list[int]:
        return []

    assert svc.spec.endpoints[0].method == "GET"


def test_endpoint_same_route_twice_names_both_functions() -> None:
    svc = make_service()

    @svc.endpoint("/hello")
    def first() -> str:
        return "1"

    with pytest.raises(SpecError, match=r"POST /hello .* by .*first\(\) and .*second\(\)"):

        @svc.endpoint("/HELLO".lower())
        def second() -> str:
            return "2"


def test_endpoint_same_path_with_other_method_is_allowed() -> None:
    svc = make_service()

    @svc.endpoint("/item", method="GET")
    def read() -> int:
        return 1

    @svc.endpoint("/item", method="DELETE")
    def remove() -> int:
        return 0

    assert [e.key for e in svc.spec.endpoints] == ["GET /item", "DELETE /item"]


def test_endpoint_streaming_must_match_generator() -> None:
    svc = make_service()
    with pytest.raises(SpecError, match="is declared streaming=True but is not a generator"):

        @svc.endpoint("/s", streaming=True)
        def not_a_generator() -> str:
            return "x"

    with pytest.raises(SpecError, match="is a generator; declare it with streaming=True"):

        @svc.endpoint("/g")
        def generator() -> Iterator[str]:
            yield "x"


def test_endpoint_path_parameter_must_be_a_function_parameter() -> None:
    svc = make_service()
    with pytest.raises(SpecError, match=r"names \{user_id\} but .* has no parameter 'user_id'"):

        @svc.endpoint("/users/{user_id}", method="GET")
        def get_user() -> None:
            return None


def test_endpoint_spec_describes_parameters() -> None:
    svc = make_service()

    @svc.endpoint("/users/{user_id}", method="GET")
    def get_user(
        user_id: int, verbose: bool = False, _api: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Fetch a user."""
        return {}

    spec = svc.spec.endpoints[0]
    assert spec.description == "Fetch a user."
    assert spec.var_kwargs is True
    assert set(spec.parameters) == {"user_id", "verbose"}
    assert spec.parameters["user_id"].type == "int"
    assert spec.parameters["user_id"].location == "path"
    assert spec.parameters["verbose"].default is False
    assert spec.return_type == "dict[str, Any]"


def test_class_service_collects_marked_methods() -> None:
    class Model:
        """A model."""

        def __init__(self, scale: int = 2) -> None:
            self.scale = scale

        @fs.endpoint("/predict")
        def predict(self, x: float) -> float:
            return x * self.scale

        def helper(self) -> None:
            return None

    service = fs.service(replicas=2)(Model)  # mypy ignores class decorators' return types, so call it
    spec = service.spec
    assert spec.kind == "class"
    assert spec.name == "Model"
    assert [e.path for e in spec.endpoints] == ["/predict"]
    assert "self" not in spec.endpoints[0].parameters
    assert service(scale=3).predict(2) == 6


def test_class_service_refuses_function_style_endpoint() -> None:
    class Thing:
        def __call__(self) -> None: ...

    with pytest.raises(SpecError, match="mark its methods with @fs.endpoint"):
        fs.service(Thing).endpoint("/x")


def test_class_service_duplicate_route_fails_at_decoration() -> None:
    class Twice:
        @fs.endpoint("/x")
        def one(self) -> int:
            return 1

        @fs.endpoint("/x")
        def two(self) -> int:
            return 2

    with pytest.raises(SpecError, match="declared twice"):
        fs.service(Twice)


def test_check_init_arguments_raises_type_error() -> None:
    @fs.service
    def svc(a: int, b: int = 2) -> dict[str, int]:
        return {}

    svc.check_init_arguments((1,), {"b": 3})
    with pytest.raises(TypeError, match=r"svc\(\.\.\.\) cannot take these arguments"):
        svc.check_init_arguments((), {"c": 1})


def test_class_with_no_endpoint_and_no_call_is_refused_naming_the_fix() -> None:
    class Nothing:
        def predict(self) -> int:
            return 1

    with pytest.raises(
        SpecError, match=r"has no endpoint.*@fs.endpoint\(\"/predict\"\).*__call__\(self, request: fs.Request\)"
    ):
        fs.service(Nothing)


def test_class_with_only_call_serves_its_prefix_on_every_method() -> None:
    class Streamer:
        def __call__(self, text: str) -> Iterator[str]:
            yield from text

    service = fs.service(Streamer)

    assert [(e.method, e.path, e.streaming) for e in service.spec.endpoints] == [
        (method, "/{path:path}", True) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ]
    assert list(service.spec.endpoints[0].parameters) == ["text"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/{rest:path}/more", "before its end"),
        ("/{n:number}", "unknown converter"),
        ("/ping/", "reserved"),
    ],
)
def test_paths_with_converters_are_checked_at_decoration(path: str, message: str) -> None:
    @fs.service
    def svc() -> dict[str, int]:
        return {}

    with pytest.raises(SpecError, match=message):
        svc.endpoint(path)


def test_placeholder_left_out_is_refused_unless_the_function_reads_the_request() -> None:
    @fs.service
    def svc() -> dict[str, int]:
        return {}

    with pytest.raises(SpecError, match="has no parameter 'rest'"):
        svc.endpoint("/{rest:path}")(lambda: None)

    def webhook(request: fs.Request) -> None: ...

    svc.endpoint("/{rest:path}")(webhook)
    assert svc.spec.endpoints[0].request_parameter == "request"
