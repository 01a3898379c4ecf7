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
