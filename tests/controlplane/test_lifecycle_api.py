"""The `/v1` lifecycle over real HTTP against a real server: functions and their versions, deployments and their
specs, hardware presets, traffic across versions (weights and pinning), blue/green redeploys under load, and
server restarts."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from _postgres import fresh_database
from _processes import is_gone
from api_lifecycle import api_version_one, api_version_three, api_version_two

import fnserve as fs
from fnserve.sdk.loader import dumps_by_value
from fnserve.settings import Settings
from fnserve.testing import run_server, wait_until

HTTP_TIMEOUT = httpx.Timeout(10.0)
FUNCTION = "api_lifecycle"
VERSION_ENDPOINT = f"/{FUNCTION}/version"
DEPLOY_TIMEOUT_S = 20.0


def deployment_path(version: int | str) -> str:
    return f"/v1/deployments/functions/{FUNCTION}/versions/{version}"


@pytest.fixture(params=["sqlite", "postgresql"])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The whole lifecycle runs twice: on the default SQLite store and on a real PostgreSQL (a fresh database)."""
    settings = Settings()
    if request.param == "postgresql":
        settings = Settings(db_url=fresh_database(request.getfixturevalue("postgres_url")))
    with run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the test's server: the `/v1` API and the gateway."""
    with httpx.Client(base_url=server_url, headers=owner(server_url), timeout=HTTP_TIMEOUT) as http:
        yield http


@pytest.fixture(scope="module")
def registered_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server per module with version 1 registered and never deployed, for tests that change nothing."""
    with run_server(home=tmp_path_factory.mktemp("registered-home"), graceful_shutdown_s=2) as url:
        with httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as http:
            register(http, api_version_one)
        yield url


@pytest.fixture
def registered(registered_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registered_url, headers=owner(registered_url), timeout=HTTP_TIMEOUT) as http:
        yield http


# -- helpers: what the client sends, and what the server answers ----------------------------------------------


def version_body(http: httpx.Client, service: fs.Service[Any], *, replicas: int | None = None) -> dict[str, Any]:
    """A version as the client sends it: the service cloudpickled by value, uploaded by its sha256, and its spec."""
    code = dumps_by_value(service, module_name=service.__module__)
    with fs.Client(str(http.base_url)) as client:
        sha256 = client.upload(code)
    spec = service.spec if replicas is None else service.spec.model_copy(update={"replicas": replicas})
    return {"spec": spec.model_dump(mode="json"), "code": {"kind": "pickle", "sha256": sha256}}


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response, status: int, code: str) -> str:
    """The error envelope's message, after checking the status, the code and the request id."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    message: str = error["message"]
    return message


def register(http: httpx.Client, service: fs.Service[Any]) -> dict[str, Any]:
    """POST /v1/functions: a new function with its first version."""
    return created(http.post("/v1/functions", json=version_body(http, service)))


def add_version(http: httpx.Client, service: fs.Service[Any]) -> dict[str, Any]:
    """POST /v1/functions/{f}/versions: a further version of the function."""
    return created(http.post(f"/v1/functions/{FUNCTION}/versions", json=version_body(http, service)))


def deploy(http: httpx.Client, version: int, **spec: Any) -> dict[str, Any]:
    return created(http.post(deployment_path(version), json=spec))


def get_deployment(http: httpx.Client, version: int) -> dict[str, Any]:
    info: dict[str, Any] = ok(http.get(deployment_path(version)))
    return info


def wait_for_state(http: httpx.Client, version: int, state: str, *, ready: int | None = None) -> dict[str, Any]:
    """Poll the deployment until it is in `state` (with exactly `ready` READY replicas, when given)."""

    def reached() -> dict[str, Any] | None:
        info = get_deployment(http, version)
        if info["state"] != state or (ready is not None and len(ready_pids(info)) != ready):
            return None
        return info

    what = f"version {version} to be {state}" + (f" with {ready} ready replicas" if ready is not None else "")
    info = wait_until(reached, timeout_s=DEPLOY_TIMEOUT_S, what=what)
    assert info is not None
    return info


def ready_pids(info: dict[str, Any]) -> list[int]:
    return sorted(replica["pid"] for replica in info["replicas"] if replica["state"] == "READY")


def answered_versions(http: httpx.Client, count: int, path: str = VERSION_ENDPOINT, **headers: str) -> list[int]:
    """Which version answered each of `count` calls to `path`."""
    versions = []
    for _ in range(count):
        versions.append(ok(http.get(path, headers=headers))["version"])
    return versions


class CallLoop:
    """Calls the function in a thread until stopped (at most `limit_s`), recording each answer or failure."""

    def __init__(self, url: str, limit_s: float = 20.0) -> None:
        self.url = url
        self.limit_s = limit_s
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-loop", daemon=True)

    def __enter__(self) -> CallLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.limit_s + 5)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        with httpx.Client(base_url=self.url, headers=owner(self.url), timeout=HTTP_TIMEOUT) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    response = http.get(VERSION_ENDPOINT)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 200:
                    self.versions.append(response.json()["version"])
                else:
                    self.failures.append(f"{response.status_code}: {response.text}")

    def answered(self, count: int) -> bool:
        return len(self.versions) + len(self.failures) >= count


# -- functions and versions -----------------------------------------------------------------------------------


def test_register_function_returns_ids_with_first_version_inactive(api: httpx.Client) -> None:
    """
    1. Register `api_lifecycle`: 201 with a function id and the first version's id, number 1, INACTIVE.
    2. The function is listed, with that one version; GET by name and by id give the same function.
    """
    registered = register(api, api_version_one)

    function, version = registered["function"], registered["version"]
    assert function["function_id"].startswith("fn-")
    assert function["name"] == FUNCTION
    assert function["route_prefix"] == f"/{FUNCTION}"
    assert version["version_id"].startswith("ver-")
    assert (version["function_id"], version["version"], version["state"]) == (function["function_id"], 1, "INACTIVE")
    assert version["spec"] == api_version_one.spec.model_dump(mode="json")
    assert version["code"]["kind"] == "pickle"

    (listed,) = ok(api.get("/v1/functions"))
    assert listed["function_id"] == function["function_id"]
    assert [(v["version_id"], v["state"]) for v in listed["versions"]] == [(version["version_id"], "INACTIVE")]
    assert ok(api.get(f"/v1/functions/{FUNCTION}")) == ok(api.get(f"/v1/functions/{function['function_id']}"))


def test_register_function_answers_409_when_name_exists(registered: httpx.Client) -> None:
    response = registered.post("/v1/functions", json=version_body(registered, api_version_two))

    message = error_of(response, 409, "service_exists")
    assert f"/v1/functions/{FUNCTION}/versions" in message
    (function,) = ok(registered.get("/v1/functions"))
    assert [v["version"] for v in function["versions"]] == [1]


def test_register_version_numbers_versions_in_order(api: httpx.Client) -> None:
    """
    1. Register the function (version 1), then POST a further version: it is number 2, INACTIVE, same function.
    2. The versions list holds 1 and 2, oldest first.
    3. GET one version by number and by id: the same version, as the list shows it.
    """
    first = register(api, api_version_one)
    second = add_version(api, api_version_two)

    function_id = first["function"]["function_id"]
    version = second["version"]
    assert (version["function_id"], version["version"], version["state"]) == (function_id, 2, "INACTIVE")
    assert version["version_id"] != first["version"]["version_id"]

    versions = ok(api.get(f"/v1/functions/{FUNCTION}/versions"))
    assert [(v["version"], v["version_id"]) for v in versions] == [
        (1, first["version"]["version_id"]),
        (2, version["version_id"]),
    ]
    by_number = ok(api.get(f"/v1/functions/{FUNCTION}/versions/2"))
    by_id = ok(api.get(f"/v1/functions/{function_id}/versions/{version['version_id']}"))
    assert by_number == by_id == versions[1]
    assert by_number["spec"]["description"] == "The second version."


def test_delete_version_succeeds_unless_deployed(api: httpx.Client) -> None:
    """
    1. Register versions 1 and 2; deploy version 1 (ACTIVE).
    2. DELETE version 2 (never deployed): 204, and it is gone from the list and from GET (404).
    3. DELETE version 1 while deployed: 409 service_exists saying to undeploy first; it still serves.
    4. Undeploy version 1; now DELETE it: 204.
    """
    register(api, api_version_one)
    add_version(api, api_version_two)
    deploy(api, 1, min_instances=1, max_instances=1)
    wait_for_state(api, 1, "ACTIVE", ready=1)

    assert api.delete(f"/v1/functions/{FUNCTION}/versions/2").status_code == 204
    assert [v["version"] for v in ok(api.get(f"/v1/functions/{FUNCTION}/versions"))] == [1]
    error_of(api.get(f"/v1/functions/{FUNCTION}/versions/2"), 404, "not_found")

    message = error_of(api.delete(f"/v1/functions/{FUNCTION}/versions/1"), 409, "service_exists")
    assert "undeploy it first" in message
    assert answered_versions(api, 1) == [1]

    assert ok(api.delete(deployment_path(1)))["state"] == "INACTIVE"
    assert api.delete(f"/v1/functions/{FUNCTION}/versions/1").status_code == 204
    assert ok(api.get(f"/v1/functions/{FUNCTION}/versions")) == []


# -- deployments ------------------------------------------------------------------------------------------------


def test_create_deployment_goes_deploying_then_active(api: httpx.Client) -> None:
    """
    1. Register version 1 and POST its deployment with min 1, max 2: 201 in DEPLOYING.
    2. GET moves to ACTIVE with one READY replica, and the function answers.
    3. POST the deployment again: 409 service_exists; the running one is untouched (same replica).
    """
    registered = register(api, api_version_one)

    deployment = deploy(api, 1, min_instances=1, max_instances=2)

    assert deployment["state"] == "DEPLOYING"
    assert deployment["version_id"] == registered["version"]["version_id"]
    assert (deployment["spec"]["min_instances"], deployment["spec"]["max_instances"]) == (1, 2)
    active = wait_for_state(api, 1, "ACTIVE", ready=1)
    assert active["deployment_id"] == deployment["deployment_id"]
    assert active["replicas_ready"] == 1
    answer = ok(api.get(VERSION_ENDPOINT))
    assert answer == {"version": 1, "pid": ready_pids(active)[0]}

    message = error_of(api.post(deployment_path(1), json={"min_instances": 1}), 409, "service_exists")
    assert "already deployed" in message
    again = get_deployment(api, 1)
    assert (again["state"], ready_pids(again), again["spec"]) == ("ACTIVE", ready_pids(active), active["spec"])


INVALID_DEPLOYMENT_SPECS = [
    # (what, spec, words the message must hold: the field and the rule)
    ("negative min_instances", {"min_instances": -1}, ["min_instances", "greater than or equal to 0"]),
    ("zero max_instances", {"max_instances": 0}, ["max_instances", "greater than or equal to 1"]),
    ("max below min", {"min_instances": 3, "max_instances": 2}, ["max_instances (2) must be >= min_instances (3)"]),
    ("zero concurrency", {"max_request_concurrency": 0}, ["max_request_concurrency", "greater than or equal to 1"]),
    ("unknown instance type", {"instance_type": "cpu.huge"}, ["instance_type 'cpu.huge' is unknown", "cpu.small"]),
    (
        "instance type and resources",
        {"instance_type": "cpu.small", "resources": {"num_cpus": 1}},
        ["instance_type or resources, not both"],
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [pytest.param(spec, expected, id=what) for what, spec, expected in INVALID_DEPLOYMENT_SPECS],
)
def test_create_deployment_answers_422_when_spec_is_invalid(
    registered: httpx.Client, spec: dict[str, Any], expected: list[str]
) -> None:
    response = registered.post(deployment_path(1), json=spec)

    message = error_of(response, 422, "validation_error")
    for words in expected:
        assert words in message
    assert response.json()["error"]["details"]["fields"]
    error_of(registered.get(deployment_path(1)), 404, "not_found")  # nothing was deployed


def test_deployment_with_instance_type_keeps_its_hardware(api: httpx.Client) -> None:
    """
    1. Deploy version 1 with `instance_type: cpu.small`: GET shows the preset's resources, 1 CPU and 4 GB.
    2. PUT the same deployment with `cpu.large`: 409 service_exists saying to DELETE and POST again.
    3. Nothing changed: still cpu.small, ACTIVE, the same replica.
    """
    register(api, api_version_one)

    deploy(api, 1, instance_type="cpu.small")
    active = wait_for_state(api, 1, "ACTIVE", ready=1)

    assert active["spec"]["instance_type"] == "cpu.small"
    assert (active["resources"]["num_cpus"], active["resources"]["memory"]) == (1, 4_000_000_000)

    response = api.put(deployment_path(1), json={"instance_type": "cpu.large"})

    message = error_of(response, 409, "service_exists")
    assert "hardware" in message
    assert "DELETE this deployment, then POST one" in message
    after = get_deployment(api, 1)
    assert (after["state"], after["spec"], after["resources"]) == ("ACTIVE", active["spec"], active["resources"])
    assert ready_pids(after) == ready_pids(active)


def test_update_deployment_scales_replicas_up_and_down(api: httpx.Client) -> None:
    """
    1. Deploy version 1 with min 1, max 2: one READY replica.
    2. PUT min 2: a second replica is READY within the deadline; the first one kept serving.
    3. PUT min 1: back to one replica; the other process exits.
    """
    register(api, api_version_one)
    deploy(api, 1, min_instances=1, max_instances=2)
    (first,) = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=1))

    grown = ok(api.put(deployment_path(1), json={"min_instances": 2, "max_instances": 2}))

    assert grown["spec"]["min_instances"] == 2
    two = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=2))
    assert first in two

    shrunk = ok(api.put(deployment_path(1), json={"min_instances": 1, "max_instances": 2}))

    assert shrunk["spec"]["min_instances"] == 1
    (kept,) = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=1))
    wait_until(lambda: len(get_deployment(api, 1)["replicas"]) == 1, timeout_s=5, what="one replica listed")
    (removed,) = set(two) - {kept}
    wait_until(lambda: is_gone(removed), timeout_s=5, what="the removed replica to exit")
    assert answered_versions(api, 2) == [1, 1]


def test_update_deployment_scales_under_load_without_failed_requests(api: httpx.Client, server_url: str) -> None:
    """
    1. Deploy version 1 with 2 replicas; start 8 loops of calls in threads.
    2. Four times: PUT min 1 and wait for one READY replica, then PUT min 2 and wait for two.
    3. Stop the loops: every call answered 200 (a retiring replica takes no new call, and the calls it holds
       finish before it exits).
    """
    register(api, api_version_one)
    deploy(api, 1, min_instances=2, max_instances=2)
    wait_for_state(api, 1, "ACTIVE", ready=2)

    with contextlib.ExitStack() as stack:
        loops = [stack.enter_context(CallLoop(server_url)) for _ in range(8)]
        wait_until(lambda: all(loop.answered(5) for loop in loops), timeout_s=5, what="every loop to get answers")
        for _ in range(4):
            ok(api.put(deployment_path(1), json={"min_instances": 1, "max_instances": 2}))
            wait_for_state(api, 1, "ACTIVE", ready=1)
            ok(api.put(deployment_path(1), json={"min_instances": 2, "max_instances": 2}))
            wait_for_state(api, 1, "ACTIVE", ready=2)

    assert [failure for loop in loops for failure in loop.failures] == []
    assert all(set(loop.versions) == {1} for loop in loops)


def test_delete_deployment_lets_call_in_flight_finish_then_stops_replicas(api: httpx.Client, tmp_path: Path) -> None:
    """
    1. Deploy version 1; start a call that blocks in the replica until a release file appears.
    2. DELETE the deployment (graceful): the function leaves the route at once (503 service_inactive), while the
       call still runs.
    3. Release the call: it answers 200, the DELETE answers INACTIVE with no replicas, and the process exits.
    """
    register(api, api_version_one)
    deploy(api, 1)
    (pid,) = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=1))
    started, release = tmp_path / "started", tmp_path / "release"

    url = str(api.base_url).rstrip("/")
    with ThreadPoolExecutor(max_workers=2) as pool:
        block = {"started": str(started), "release": str(release)}
        call = pool.submit(httpx.post, f"{url}/{FUNCTION}/block", json=block, timeout=HTTP_TIMEOUT)
        wait_until(started.exists, timeout_s=5, what="the call to start")
        undeploy = pool.submit(
            httpx.delete, url + deployment_path(1), params={"graceful": True}, headers=owner(url), timeout=HTTP_TIMEOUT
        )
        wait_until(lambda: api.get(VERSION_ENDPOINT).status_code == 503, timeout_s=5, what="the route to be removed")
        assert not call.done()

        release.touch()
        response = call.result(timeout=10)
        undeployed = undeploy.result(timeout=10)

    assert ok(response) == "released"
    info = ok(undeployed)
    assert (info["state"], info["replicas"], info["replicas_ready"]) == ("INACTIVE", [], 0)
    assert get_deployment(api, 1)["state"] == "INACTIVE"
    wait_until(lambda: is_gone(pid), timeout_s=5, what="the replica to exit")


def test_deployment_with_zero_min_instances_is_active_and_starts_a_replica_for_the_first_call(
    api: httpx.Client,
) -> None:
    register(api, api_version_one)

    deployment = deploy(api, 1, min_instances=0, max_instances=1)

    assert (deployment["state"], deployment["replicas"]) == ("ACTIVE", [])
    assert get_deployment(api, 1)["state"] == "ACTIVE"
    assert ok(api.get(VERSION_ENDPOINT))["version"] == 1  # scaled from zero: the call waited for a replica
    assert len(get_deployment(api, 1)["replicas"]) == 1


# -- hardware -------------------------------------------------------------------------------------------------


def test_instance_types_lists_presets(registered: httpx.Client) -> None:
    presets = {preset["name"]: preset["resources"] for preset in ok(registered.get("/v1/instance-types"))}

    assert {"cpu.small", "cpu.large", "gpu.1"} <= set(presets)
    assert (presets["cpu.small"]["num_cpus"], presets["cpu.small"]["memory"]) == (1, 4_000_000_000)
    assert (presets["cpu.large"]["num_cpus"], presets["cpu.large"]["memory"]) == (4, 16_000_000_000)
    assert (presets["gpu.1"]["num_cpus"], presets["gpu.1"]["memory"], presets["gpu.1"]["num_gpus"]) == (
        8,
        40_000_000_000,
        1,
    )


def test_gpus_lists_host_gpu_types(registered: httpx.Client) -> None:
    gpus = ok(registered.get("/v1/gpus"))

    assert isinstance(gpus, list)  # none is a valid answer on a host without GPUs
    for gpu in gpus:
        assert gpu["gpu_type"]
        assert gpu["count"] >= 1


# -- traffic across versions ----------------------------------------------------------------------------------


def deploy_two_versions(api: httpx.Client) -> None:
    """Versions 1 and 2 deployed and ACTIVE with one replica each; version 3 registered, never deployed."""
    register(api, api_version_one)
    add_version(api, api_version_two)
    add_version(api, api_version_three)
    deploy(api, 1)
    deploy(api, 2)
    wait_for_state(api, 1, "ACTIVE", ready=1)
    wait_for_state(api, 2, "ACTIVE", ready=1)


def test_function_level_calls_spread_over_active_versions_by_weight(api: httpx.Client) -> None:
    """
    1. Deploy versions 1 and 2 (equal weights); version 3 stays registered but INACTIVE.
    2. 40 function-level calls reach both 1 and 2, and never 3.
    3. PUT weight 0 on version 2 (1 keeps weight 1): the calls only reach version 1.
    4. Undeploy version 1 and put weight 1 back on 2: only version 2; the undeployed one is never reached.
    """
    deploy_two_versions(api)

    spread = answered_versions(api, 40)

    assert set(spread) == {1, 2}
    assert min(spread.count(1), spread.count(2)) >= 10  # equal weights: an even share each

    ok(api.put(deployment_path(2), json={"weight": 0}))

    assert set(answered_versions(api, 20)) == {1}

    assert ok(api.delete(deployment_path(1)))["state"] == "INACTIVE"
    ok(api.put(deployment_path(2), json={"weight": 1}))

    assert set(answered_versions(api, 20)) == {2}


def test_pinned_calls_reach_only_their_version(api: httpx.Client) -> None:
    """
    1. Deploy versions 1 and 2; version 3 is registered but not deployed.
    2. Pinned by the header `fnserve-version: 2`, and by the path `/-/versions/2/...`: only version 2 answers.
    3. Pinned to version 1 the same two ways: only version 1.
    4. Pinned to version 3 (INACTIVE) or 9 (unknown): 404 naming the deployed versions.
    """
    deploy_two_versions(api)

    assert set(answered_versions(api, 10, **{"fnserve-version": "2"})) == {2}
    assert set(answered_versions(api, 10, f"/{FUNCTION}/-/versions/2/version")) == {2}
    assert set(answered_versions(api, 10, **{"fnserve-version": "1"})) == {1}
    assert set(answered_versions(api, 10, f"/{FUNCTION}/-/versions/1/version")) == {1}

    for pinned in ("3", "9"):
        by_header = error_of(api.get(VERSION_ENDPOINT, headers={"fnserve-version": pinned}), 404, "not_found")
        by_path = error_of(api.get(f"/{FUNCTION}/-/versions/{pinned}/version"), 404, "not_found")
        assert by_header == by_path
        assert f"no deployed version {pinned} (deployed: 1, 2)" in by_header


# -- blue/green through /v1/services --------------------------------------------------------------------------


def service_versions(api: httpx.Client) -> dict[int, str]:
    """Each version's state, as GET /v1/services/{name} shows them."""
    return {v["version"]: v["state"] for v in ok(api.get(f"/v1/services/{FUNCTION}"))["versions"]}


def deploy_service(api: httpx.Client, service: fs.Service[Any], *, replicas: int, keep_old: bool = False) -> None:
    """POST /v1/services: add a version and deploy it, as `fnserve deploy` does."""
    body = version_body(api, service, replicas=replicas) | {"keep_old": keep_old}
    created(api.post("/v1/services", json=body))


def test_redeploy_switches_to_new_version_without_failed_requests(api: httpx.Client, server_url: str) -> None:
    """
    1. Deploy version 1 through /v1/services with 2 replicas; wait until ACTIVE.
    2. Start a loop of calls in a thread; once it has answers, deploy version 2 under the same name.
    3. Wait until the service shows version 2 ACTIVE and version 1 INACTIVE, then until version 2 has answered
       a few more calls; stop the loop.
    4. No call failed, and the answers switch from version 1 to version 2 once, never back.
    5. Version 1's replicas are gone.
    """
    deploy_service(api, api_version_one, replicas=2)
    old_pids = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=2))

    with CallLoop(server_url) as loop:
        wait_until(lambda: loop.answered(20), timeout_s=5, what="the loop to get answers")
        deploy_service(api, api_version_two, replicas=2)
        wait_until(
            lambda: service_versions(api) == {1: "INACTIVE", 2: "ACTIVE"},
            timeout_s=DEPLOY_TIMEOUT_S,
            what="version 2 ACTIVE and version 1 INACTIVE",
        )
        switched = len(loop.versions)
        wait_until(lambda: len(loop.versions) >= switched + 20, timeout_s=5, what="more answers after the switch")

    assert loop.failures == []
    first_two = loop.versions.index(2)
    assert set(loop.versions[:first_two]) == {1}
    assert set(loop.versions[first_two:]) == {2}
    assert ok(api.get(f"/v1/services/{FUNCTION}"))["version"] == 2
    wait_until(lambda: all(is_gone(pid) for pid in old_pids), timeout_s=5, what="version 1's replicas to exit")


def test_redeploy_with_keep_old_splits_traffic(api: httpx.Client) -> None:
    """
    1. Deploy version 1 through /v1/services; wait until ACTIVE.
    2. Deploy version 2 with `keep_old`: once it is ACTIVE, version 1 is still ACTIVE too.
    3. Function-level calls reach both.
    """
    deploy_service(api, api_version_one, replicas=1)
    wait_for_state(api, 1, "ACTIVE", ready=1)

    deploy_service(api, api_version_two, replicas=1, keep_old=True)
    wait_for_state(api, 2, "ACTIVE", ready=1)

    assert service_versions(api) == {1: "ACTIVE", 2: "ACTIVE"}
    assert set(answered_versions(api, 20)) == {1, 2}


# -- durability -------------------------------------------------------------------------------------------------


def test_server_restart_keeps_functions_versions_and_deployments(tmp_path: Path) -> None:
    """
    1. On a server: register versions 1, 2 and 3; deploy 1 (ACTIVE); deploy 2, then undeploy it (INACTIVE).
    2. Stop that server and start another on the same home folder.
    3. The function keeps its id; the versions list is the same (ids, specs, code, states) once version 1 is
       ACTIVE again; both deployments keep their ids and specs, version 2 stays INACTIVE, 3 has none.
    4. Version 1 serves again from a new replica; version 2 cannot be reached.
    """
    home = tmp_path / "home"
    with (
        run_server(home=home, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as api,
    ):
        function_id = register(api, api_version_one)["function"]["function_id"]
        add_version(api, api_version_two)
        add_version(api, api_version_three)
        deploy(api, 1, min_instances=1, max_instances=2, max_request_concurrency=4)
        deploy(api, 2)
        (old_pid,) = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=1))
        wait_for_state(api, 2, "ACTIVE", ready=1)
        ok(api.delete(deployment_path(2)))
        versions_before = ok(api.get(f"/v1/functions/{FUNCTION}/versions"))
        deployments_before = {n: get_deployment(api, n) for n in (1, 2)}
    assert [v["state"] for v in versions_before] == ["ACTIVE", "INACTIVE", "INACTIVE"]

    with (
        run_server(home=home, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as api,
    ):
        (function,) = ok(api.get("/v1/functions"))
        assert function["function_id"] == function_id
        (new_pid,) = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=1))

        assert ok(api.get(f"/v1/functions/{FUNCTION}/versions")) == versions_before
        for number in (1, 2):
            after, before = get_deployment(api, number), deployments_before[number]
            assert (after["deployment_id"], after["spec"]) == (before["deployment_id"], before["spec"])
        assert get_deployment(api, 2)["state"] == "INACTIVE"
        error_of(api.get(deployment_path(3)), 404, "not_found")

        assert new_pid != old_pid
        assert ok(api.get(VERSION_ENDPOINT)) == {"version": 1, "pid": new_pid}
        error_of(api.get(VERSION_ENDPOINT, headers={"fnserve-version": "2"}), 404, "not_found")
