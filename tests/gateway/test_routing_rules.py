"""Ray Serve's routing rules over real HTTP to real replicas: catch-all paths and converters, the most specific route
first, trailing slashes both ways, a class served by `__call__` on every method and subpath, the service's own paths
kept, and the OpenAPI document of those routes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from routing import Adder, Ingress, paths

import fnserve as fs
from fnserve.testing import run_server


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("routing-home"), graceful_shutdown_s=2) as url:
        for service in (paths, Ingress, Adder):
            with fs.deploy(service, url=url)() as deployment:  # type: ignore[arg-type]
                deployment.wait(timeout_s=30)
        yield url


@pytest.mark.parametrize("path", ["/api/v1.0/predict/", "/api/v1.0/predict"])
def test_path_declared_with_a_trailing_slash_matches_with_or_without_it(url: str, path: str) -> None:
    response = httpx.post(f"{url}/paths{path}", json={"x": 3})

    assert response.json() == {"route": "predict", "x": 3}


def test_path_declared_without_a_trailing_slash_matches_with_one(url: str) -> None:
    assert httpx.get(f"{url}/paths/plain/").json() == {"route": "plain"}
    assert httpx.get(f"{url}/paths/plain").json() == {"route": "plain"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/items/7", {"route": "item", "n": 7}),
        ("/items/7/", {"route": "item", "n": 7}),
        ("/items/seven", {"route": "fallback", "anything": "items/seven"}),  # {n:int} takes digits only
        ("/files/a/b/c.txt", {"route": "files", "rest": "a/b/c.txt"}),
        ("/files", {"route": "files", "rest": ""}),
        ("/plain/more", {"route": "fallback", "anything": "plain/more"}),
        ("/", {"route": "fallback", "anything": ""}),
        ("/deep/er/path", {"route": "fallback", "anything": "deep/er/path"}),
    ],
)
def test_most_specific_route_wins_and_catch_alls_take_the_rest(
    url: str, path: str, expected: dict[str, object]
) -> None:
    response = httpx.get(f"{url}/paths{path}")

    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_catch_all_leaves_the_service_paths_alone(url: str) -> None:
    assert httpx.get(f"{url}/paths/ping").json() == {"status": "healthy"}
    assert httpx.get(f"{url}/paths/docs/specs.json").json()["info"]["title"] == "paths"
    assert httpx.get(f"{url}/paths/-/versions/1/files/x").json() == {"route": "files", "rest": "x"}
    assert httpx.get(f"{url}/paths/-/other").status_code == 404
    assert httpx.get(f"{url}/paths/info").status_code == 401  # the owner's, not the catch-all's


def test_method_no_route_takes_is_a_405(url: str) -> None:
    response = httpx.delete(f"{url}/paths/anything")

    assert response.status_code == 405
    assert response.json()["error"]["details"] == {"allow": ["GET"]}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["", "/", "/a", "/a/b/c"])
def test_class_with_only_call_serves_every_method_and_subpath(url: str, method: str, path: str) -> None:
    response = httpx.request(method, f"{url}/ingress{path}?q=1", content=b"hello")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["method"], answer["path"], answer["query"], answer["body"]) == (
        method,
        path or "/",
        {"q": "1"},
        "hello",
    )


def test_call_with_typed_parameters_takes_json(url: str) -> None:
    assert httpx.post(f"{url}/adder", json={"a": 2, "b": 3}).json() == 5
    assert httpx.post(f"{url}/adder/any/path", json={"a": 1}).json() == 1
    missing = httpx.post(f"{url}/adder", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"]["fields"] == [{"field": "a", "message": "is required"}]


def test_openapi_shows_catch_alls_and_call_routes(url: str) -> None:
    routes = httpx.get(f"{url}/paths/docs/specs.json").json()["paths"]
    ingress = httpx.get(f"{url}/ingress/docs/specs.json").json()["paths"]

    assert "/files/{rest}" in routes
    assert "/{anything}" in routes
    assert "/items/{n}" in routes
    parameter = routes["/files/{rest}"]["get"]["parameters"][0]
    assert parameter["name"] == "rest"
    assert "slashes included" in parameter["description"]
    assert set(ingress["/{path}"]) == {"get", "post", "put", "patch", "delete"}
    assert ingress["/{path}"]["post"]["operationId"] == "post_call"
    assert "*/*" in ingress["/{path}"]["post"]["requestBody"]["content"]


def test_client_calls_catch_alls_and_call_routes(url: str) -> None:
    with fs.get_deployment("adder", url=url) as adder, fs.get_deployment("paths", url=url) as routes:
        assert adder.post_root(a=1, b=2) == 3
        assert adder.post_root(a=1, path="any/where") == 1
        assert routes.files(rest="a/b") == {"route": "files", "rest": "a/b"}
        assert routes.items(n=4) == {"route": "item", "n": 4}
