"""The Python client: `fs.deploy(service)(...)`, `fs.get_deployment(name)` and the `Deployment` handle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from broken_init import raises
from client_gated_init import gated_init
from client_prefix_clash import echo_clash
from echo import echo, echo_args, get_item

import fnserve as fs
from fnserve.client.api import Client
from fnserve.errors import DeploymentFailed, InvalidRequest, ServiceExists, ServiceNotFound
from fnserve.method_names import method_names
from fnserve.sdk.loader import load_target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def echo_deployment(server_url: str) -> Iterator[fs.Deployment]:
    """echo deployed with greeting="hi", ACTIVE; its HTTP client closed afterwards."""
    deployment = fs.deploy(echo, url=server_url)(greeting="hi")
    try:
        yield deployment.wait(timeout_s=30)
    finally:
        deployment.close()


def test_deploy_raises_type_error_before_uploading_when_init_arguments_do_not_fit(client: Client) -> None:
    """
    1. Deploy echo with a keyword its initializer does not take: TypeError naming the service and the keyword.
    2. Nothing reached the server: no service is listed.
    """
    start = fs.deploy(echo, url=client.url)
    with pytest.raises(TypeError, match=r"echo\(\.\.\.\) cannot take these arguments.*greting"):
        start(greting="hi")
    with pytest.raises(TypeError, match="cannot take these arguments"):
        start("hi", 1, 2)

    assert client.list_services() == []


def test_deploy_rejects_objects_that_are_not_services() -> None:
    with pytest.raises(TypeError, match="takes a @fs.service"):
        fs.deploy(echo_args)  # type: ignore[arg-type]


def test_deploy_wait_returns_an_active_deployment_whose_routes_are_methods(
    echo_deployment: fs.Deployment, server_url: str
) -> None:
    """
    1. `fs.deploy(echo)(greeting="hi").wait()` gives an ACTIVE deployment at the server's /echo prefix.
    2. Its methods are named after the paths: `/echo` → echo, `/items/{item_id}` → items, `/whoami` → whoami.
    3. Calling them reaches the replica: a path parameter moves into the URL and is coerced from the hints.
    """
    deployment = echo_deployment
    assert deployment.state == "ACTIVE"
    assert deployment.name == "echo"
    assert deployment.address == f"{server_url}/echo"
    assert deployment.reason is None

    assert set(deployment.endpoints) == {"echo", "whoami", "items", "boom", "unserializable", "api", "async"}
    assert deployment.endpoints["items"]["path"] == "/items/{item_id}"
    assert deployment.endpoints["items"]["method"] == "GET"
    assert {"echo", "aecho", "items", "aitems"} <= set(dir(deployment))

    assert deployment.echo(text="x") == {"text": "x", "greeting": "hi", "shared": 1}
    assert deployment.items(item_id=3, q="z") == {"item_id": 3, "type": "int", "q": "z"}
    assert deployment.call("/items/{item_id}", "get", item_id=4) == {"item_id": 4, "type": "int", "q": ""}
    assert deployment.whoami()["init_calls"] == 1


def test_deploy_raises_service_exists_when_another_service_owns_the_route_prefix(
    echo_deployment: fs.Deployment, client: Client
) -> None:
    with pytest.raises(ServiceExists, match="route prefix /echo is already used by service 'echo'"):
        fs.deploy(echo_clash, url=client.url)()

    assert [service["name"] for service in client.list_services()] == ["echo"]


def test_deployment_attribute_error_lists_the_endpoints_when_no_route_matches(
    echo_deployment: fs.Deployment,
) -> None:
    with pytest.raises(AttributeError, match="no attribute or endpoint 'nope'; endpoints: echo, whoami"):
        _ = echo_deployment.nope


def test_method_names_come_from_the_path_with_the_method_in_front_on_collisions() -> None:
    endpoints = [
        {"path": "/custom-endpoint", "method": "POST"},
        {"path": "/users/{user_id}", "method": "GET"},
        {"path": "/users/{user_id}", "method": "PUT"},
        {"path": "/items/{item_id}/tags", "method": "GET"},
        {"path": "/", "method": "GET"},
        {"path": "/2fa", "method": "POST"},
    ]

    assert list(method_names(endpoints)) == ["custom_endpoint", "get_users", "put_users", "items_tags", "root", "_2fa"]


def test_print_shows_name_id_address_state_and_endpoints(
    echo_deployment: fs.Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    print(echo_deployment)

    shown = capsys.readouterr().out
    assert shown.startswith("Deployment echo\n")
    assert f"id:        {echo_deployment.service_id}" in shown
    assert f"address:   {echo_deployment.address}" in shown
    assert "state:     ACTIVE" in shown
    assert "POST   /echo" in shown
    assert ".echo()" in shown
    assert "GET    /items/{item_id}" in shown
    assert ".items()" in shown
    assert repr(echo_deployment) == f"<Deployment 'echo' ACTIVE at {echo_deployment.address}>"


@pytest.mark.anyio
async def test_async_twin_returns_the_same_result_as_the_sync_method(server_url: str) -> None:
    deployment = fs.deploy(echo, url=server_url)(greeting="hi").wait(timeout_s=30)
    try:
        assert await deployment.aecho(text="x") == {"text": "x", "greeting": "hi", "shared": 1}
        assert await deployment.aitems(item_id=5) == {"item_id": 5, "type": "int", "q": ""}
    finally:
        await deployment.aclose()
        deployment.close()


def test_endpoint_arguments_prefer_caller_then_initializer_then_function_default(
    echo_deployment: fs.Deployment,
) -> None:
    """
    1. The caller leaves out `greeting` and `shared`: the initializer's values are injected ("hi", and
       shared=1, which beats the function's own default of 0).
    2. The caller sends both: the caller's values win.
    3. The initializer's other keys (`pid`, `init_calls`), which no parameter of /echo names, are not passed:
       the call succeeds and returns only the function's parameters.
    """
    assert echo_deployment.echo(text="x") == {"text": "x", "greeting": "hi", "shared": 1}

    assert echo_deployment.echo(text="x", greeting="yo", shared=7) == {"text": "x", "greeting": "yo", "shared": 7}

    assert set(echo_deployment.echo(text="y")) == {"text", "greeting", "shared"}


def test_get_deployment_returns_a_working_handle_for_an_existing_service(
    echo_deployment: fs.Deployment, server_url: str
) -> None:
    handle = fs.get_deployment("echo", url=server_url, wait=True)
    try:
        assert handle.service_id == echo_deployment.service_id
        assert handle.state == "ACTIVE"
        assert handle.echo(text="again") == {"text": "again", "greeting": "hi", "shared": 1}
    finally:
        handle.close()


def test_get_deployment_raises_service_not_found_for_an_unknown_name(server_url: str) -> None:
    with pytest.raises(ServiceNotFound, match="nope"):
        fs.get_deployment("nope", url=server_url)


def test_get_deployment_takes_a_deployment_a_name_or_an_id(echo_deployment: fs.Deployment, server_url: str) -> None:
    """A Deployment (what `fs.deploy(...)()` returned) gives a fresh handle on the same service, on its server, and
    the handle works after the first one is closed."""
    by_handle = fs.get_deployment(echo_deployment)
    by_id = fs.get_deployment(echo_deployment.service_id, url=server_url)
    by_name = fs.get_deployment("echo", url=server_url)
    try:
        assert by_handle.service_id == by_id.service_id == by_name.service_id == echo_deployment.service_id
        echo_deployment.close()
        assert by_handle.echo(text="again")["text"] == "again"
    finally:
        for handle in (by_handle, by_id, by_name):
            handle.close()


def test_get_deployment_refuses_other_objects_naming_what_it_takes(server_url: str) -> None:
    with pytest.raises(TypeError, match=r"takes a service name, a service id or a Deployment, got Client"):
        fs.get_deployment(Client(server_url), url=server_url)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["no such", "a?b=1", "nope#x", "line\nbreak", "100%"])
def test_a_name_with_url_characters_is_one_path_segment(client: Client, name: str) -> None:
    """Names and ids go into URLs quoted: a space, `?`, `#`, `%` or control character makes no invalid URL and
    no other request; the server answers that there is no such service."""
    with pytest.raises(ServiceNotFound):
        client.get_service(name)
    with pytest.raises(ServiceNotFound):
        client.teardown(name)


def test_a_name_with_a_slash_is_refused_before_it_reaches_another_route(client: Client) -> None:
    with pytest.raises(InvalidRequest, match="'x/build-log' is not a name or id"):
        client.get_service("x/build-log")  # GET /v1/services/x/build-log is a route of its own


def test_wait_raises_timeout_error_naming_the_state_when_not_active_in_time(server_url: str, tmp_path: Path) -> None:
    """
    1. Deploy a service whose initializer blocks until a gate file exists.
    2. `wait(timeout_s=0.3)` raises TimeoutError saying it is still DEPLOYING.
    3. Create the gate file: `wait()` now returns ACTIVE and the service answers.
    """
    gate = tmp_path / "gate"
    deployment = fs.deploy(gated_init, url=server_url)(gate=str(gate))
    try:
        with pytest.raises(TimeoutError, match=r"'gated_init' is still DEPLOYING after 0.3 s"):
            deployment.wait(timeout_s=0.3)
        assert deployment.state == "DEPLOYING"

        gate.touch()

        assert deployment.wait(timeout_s=30).state == "ACTIVE"
        assert deployment.hello() == "started"
    finally:
        gate.touch()
        deployment.close()


def test_wait_raises_deployment_failed_with_the_reason_when_the_initializer_raises(server_url: str) -> None:
    deployment = fs.deploy(raises, url=server_url)()
    try:
        with pytest.raises(DeploymentFailed, match="'raises' failed to deploy: .*cannot load the model"):
            deployment.wait(timeout_s=30)
        assert deployment.state == "ERROR"
    finally:
        deployment.close()


def test_teardown_makes_the_deployment_inactive_and_stops_serving(
    echo_deployment: fs.Deployment, client: Client
) -> None:
    """
    1. Tear the ACTIVE echo deployment down: the handle says INACTIVE, and so does the server.
    2. Its route answers that it is not running (503 service_inactive); `wait()` says it must be deployed again.
    """
    assert echo_deployment.teardown().state == "INACTIVE"
    assert client.get_service("echo")["state"] == "INACTIVE"

    response = httpx.post(f"{echo_deployment.address}/echo", json={"text": "x"}, timeout=10)
    assert (response.status_code, response.json()["error"]["code"]) == (503, "service_inactive")
    with pytest.raises(DeploymentFailed, match="INACTIVE"):
        echo_deployment.wait(timeout_s=5)


def test_decorated_functions_and_classes_stay_plain_callables() -> None:
    state = echo(greeting="hey")
    assert state["greeting"] == "hey"
    assert state["shared"] == 1
    assert echo_args(text="t", greeting="g") == {"text": "t", "greeting": "g", "shared": 0}
    assert get_item(item_id=2) == {"item_id": 2, "type": "int", "q": ""}

    counter_service, _, _ = load_target(str(EXAMPLES / "counter.py"))  # examples/ is outside mypy's files
    counter = counter_service(start=1)
    assert counter.increment(by=2) == 3
    assert type(counter).__name__ == "Counter"
