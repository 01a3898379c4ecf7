"""Routing decisions, without I/O."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import fnserve as fs
from fnserve.errors import MethodNotAllowed, NotFound
from fnserve.gateway.router import PrefixTable, ReplicaPicker, ServiceRoutes


def test_prefix_table_longest_prefix_on_segment_boundaries() -> None:
    table: PrefixTable[str] = PrefixTable()
    table.set("/api", "api")
    table.set("/api/v2", "v2")
    assert table.resolve("/api") == ("api", "/")
    assert table.resolve("/api/x") == ("api", "/x")
    assert table.resolve("/api/v2/x") == ("v2", "/x")
    assert table.resolve("/apix") is None
    assert table.resolve("/other") is None


def test_prefix_table_root_prefix_catches_everything_else() -> None:
    table: PrefixTable[str] = PrefixTable()
    table.set("/", "root")
    table.set("/api", "api")
    assert table.resolve("/hello") == ("root", "/hello")
    assert table.resolve("/api/x") == ("api", "/x")


def routes() -> ServiceRoutes:
    @fs.service
    def svc() -> dict[str, object]:
        return {}

    @svc.endpoint("/users/{user_id}", method="GET")
    def get_user(user_id: int) -> None: ...

    @svc.endpoint("/users/{user_id}", method="PUT")
    def put_user(user_id: int) -> None: ...

    @svc.endpoint("/users/me", method="GET")
    def me() -> None: ...

    return ServiceRoutes(svc.spec)


def test_service_routes_match_static_before_templates() -> None:
    route, params = routes().match("GET", "/users/me")
    assert route.spec.function_name.endswith("me")
    assert params == {}


def test_service_routes_extract_path_parameters() -> None:
    route, params = routes().match("PUT", "/users/7")
    assert route.index == 1
    assert params == {"user_id": "7"}


def test_service_routes_wrong_method_lists_allowed() -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        routes().match("DELETE", "/users/7")
    assert caught.value.details == {"allow": ["GET", "PUT"]}


def test_service_routes_unknown_path() -> None:
    with pytest.raises(NotFound):
        routes().match("GET", "/users/7/extra")


@dataclass
class Load:
    name: str
    in_flight: int


def test_picker_prefers_fewest_in_flight_and_rotates_ties() -> None:
    picker: ReplicaPicker[Load] = ReplicaPicker()
    busy, idle = Load("busy", 3), Load("idle", 0)
    assert {picker.pick([busy, idle]).name for _ in range(4)} == {"idle"}  # type: ignore[union-attr]
    a, b = Load("a", 0), Load("b", 0)
    assert {picker.pick([a, b]).name for _ in range(4)} == {"a", "b"}  # type: ignore[union-attr]
    assert picker.pick([]) is None


def catch_all_routes() -> ServiceRoutes:
    @fs.service
    def svc() -> dict[str, object]:
        return {}

    @svc.endpoint("/predict/")
    def predict() -> None: ...

    @svc.endpoint("/plain", method="GET")
    def plain() -> None: ...

    @svc.endpoint("/n/{n:int}", method="GET")
    def number(n: int) -> None: ...

    @svc.endpoint("/{rest:path}", method="GET")
    def everything(rest: str) -> None: ...

    @svc.endpoint("/files/{rest:path}", method="GET")
    def files(rest: str) -> None: ...

    return ServiceRoutes(svc.spec)


@pytest.mark.parametrize(
    ("method", "path", "function", "params"),
    [
        ("POST", "/predict/", "predict", {}),
        ("POST", "/predict", "predict", {}),
        ("GET", "/plain/", "plain", {}),
        ("GET", "/n/12", "number", {"n": "12"}),
        ("GET", "/n/12/", "number", {"n": "12"}),
        ("GET", "/n/x", "everything", {"rest": "n/x"}),
        ("GET", "/files/a/b", "files", {"rest": "a/b"}),  # the longer literal start wins, declared later or not
        ("GET", "/files", "files", {"rest": ""}),
        ("GET", "/", "everything", {"rest": ""}),
        ("GET", "/predict", "everything", {"rest": "predict"}),  # /predict takes POST only; GET goes on
    ],
)
def test_routing_rules_most_specific_first_and_slashes_both_ways(
    method: str, path: str, function: str, params: dict[str, str]
) -> None:
    route, found = catch_all_routes().match(method, path)

    assert (route.spec.function_name.rpartition(".")[2], found) == (function, params)


@pytest.mark.parametrize("path", ["/ping", "/info/", "/docs", "/-/anything", "/status/abc"])
def test_catch_all_never_takes_the_service_paths(path: str) -> None:
    with pytest.raises(NotFound):
        catch_all_routes().match("GET", path)


def test_method_that_no_matching_route_takes_lists_them_all() -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        catch_all_routes().match("DELETE", "/predict")
    assert caught.value.details == {"allow": ["GET", "POST"]}


def test_class_with_only_call_matches_every_method_and_path_without_sending_the_rest() -> None:
    class Ingress:
        def __call__(self, request: fs.Request) -> None: ...

    routes = ServiceRoutes(fs.service(Ingress).spec)

    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        route, params = routes.match(method, "/a/b/")
        assert (route.spec.method, route.spec.path, params) == (method, "/{path:path}", {})
