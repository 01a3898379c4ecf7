"""Disabling a service and enabling it again, over real HTTP against a real server: replicas stop, every call and
job submission answers `service_disabled`, queued jobs wait, a deploy meanwhile starts nothing, enabling brings back
what ran as it was, and the flag outlives a restart."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from _processes import is_gone
from api_lifecycle import api_version_one, api_version_two
from client_gated_init import gated_init
from test_lifecycle_api import (
    FUNCTION,
    HTTP_TIMEOUT,
    VERSION_ENDPOINT,
    answered_versions,
    created,
    deploy,
    error_of,
    get_deployment,
    ok,
    ready_pids,
    register,
    version_body,
    wait_for_state,
)
from time_limited import medium_lived

import fnserve as fs
from fnserve.testing import run_server, wait_until

SERVICE = f"/v1/services/{FUNCTION}"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        run_server(home=tmp_path / "home", graceful_shutdown_s=5) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as http,
    ):
        yield http


def disable(http: httpx.Client) -> dict[str, Any]:
    info: dict[str, Any] = ok(http.post(f"{SERVICE}/disable"))
    return info


def enable(http: httpx.Client) -> dict[str, Any]:
    info: dict[str, Any] = ok(http.post(f"{SERVICE}/enable"))
    return info


def assert_refused(response: httpx.Response) -> None:
    message = error_of(response, 503, "service_disabled")
    assert f"'{FUNCTION}' is disabled" in message
    assert f"`fnserve enable {FUNCTION}`" in message


def test_disable_stops_replicas_and_refuses_calls_until_enable_brings_it_back_as_it_was(api: httpx.Client) -> None:
    """
    1. Deploy version 1 with 2 to 3 instances and a concurrency of 4: ACTIVE, 2 replicas.
    2. Disable it: the answer is DISABLED with no replicas, once both processes have exited.
    3. Calls, pinned calls, job submissions, `/ping` and `/docs` answer 503 service_disabled, naming the fix.
    4. The service and its deployment say DISABLED with the reason; the deployment keeps its spec. Again: harmless.
    5. Enable it: DEPLOYING, then ACTIVE with 2 new replicas and the same spec; calls are served again.
    """
    register(api, api_version_one)
    deploy(api, 1, min_instances=2, max_instances=3, max_request_concurrency=4)
    old_pids = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=2))
    spec = get_deployment(api, 1)["spec"]

    info = disable(api)
    assert (info["state"], info["disabled"], info["replicas"], info["replicas_ready"]) == ("DISABLED", True, [], 0)
    assert info["disabled_at"] is not None
    assert info["reason"] == f"disabled by the owner; `fnserve enable {FUNCTION}` starts it again"
    wait_until(lambda: all(is_gone(pid) for pid in old_pids), timeout_s=5, what="the replicas to exit")

    assert_refused(api.get(VERSION_ENDPOINT))
    assert_refused(api.get(f"/{FUNCTION}/-/versions/1/version"))
    assert_refused(api.get(VERSION_ENDPOINT, headers={"fnserve-version": "1"}))
    assert_refused(api.post(f"/{FUNCTION}/run", json={"endpoint": "/version", "method": "GET"}))
    assert_refused(api.post(f"/{FUNCTION}/runsync", json={"endpoint": "/version", "method": "GET"}))
    assert_refused(api.get(f"/{FUNCTION}/version", headers={"fnserve-poll-seconds": "1"}))
    assert_refused(api.get(f"/{FUNCTION}/ping"))
    assert_refused(api.get(f"/{FUNCTION}/docs"))
    assert ok(api.get("/-/routes"))[f"/{FUNCTION}"]["state"] == "DISABLED"

    service = ok(api.get(SERVICE))
    assert (service["state"], service["disabled"], service["version"]) == ("DISABLED", True, 1)
    assert [v["state"] for v in service["versions"]] == ["DISABLED"]
    deployment = get_deployment(api, 1)
    assert (deployment["state"], deployment["spec"], deployment["replicas"]) == ("DISABLED", spec, [])
    assert disable(api)["disabled_at"] == info["disabled_at"]

    enabled = enable(api)
    assert enabled["disabled"] is False
    assert enabled["disabled_at"] is None
    assert enabled["state"] in ("DEPLOYING", "ACTIVE")
    new_pids = ready_pids(wait_for_state(api, 1, "ACTIVE", ready=2))
    assert not set(new_pids) & set(old_pids)
    assert get_deployment(api, 1)["spec"] == spec
    assert ok(api.get(VERSION_ENDPOINT))["version"] == 1
    assert ok(api.get(SERVICE))["state"] == "ACTIVE"
    assert ok(api.get(f"/{FUNCTION}/ping")) == {"status": "healthy"}


def test_a_queued_job_waits_while_disabled_and_runs_after_enable(api: httpx.Client, tmp_path: Path) -> None:
    """
    1. One replica taking one call at a time: job A runs (it blocks for at most 3 s), job B waits in the queue.
    2. Disable: A finishes while the replica drains; B stays IN_QUEUE, and says why it waits.
    3. Enable: B runs and completes.
    """
    register(api, api_version_one)
    deploy(api, 1, min_instances=1, max_instances=1, max_request_concurrency=1)
    wait_for_state(api, 1, "ACTIVE", ready=1)
    started = tmp_path / "started"
    block = {"started": str(started), "release": str(tmp_path / "never"), "limit_s": 3.0}
    first = created_job(api, {"endpoint": "/block", "input": block})
    wait_until(started.exists, timeout_s=10, what="job A to start")
    quick = {"started": str(tmp_path / "started-b"), "release": str(tmp_path / "never"), "limit_s": 0.01}
    second = created_job(api, {"endpoint": "/block", "input": quick})

    disable(api)
    assert job(api, first)["status"] == "COMPLETED"
    waiting = job(api, second)
    assert waiting["status"] == "IN_QUEUE"
    assert (
        waiting["reason"] == f"{FUNCTION} is disabled by its owner; it runs once `fnserve enable {FUNCTION}` starts it"
    )

    enable(api)
    wait_until(lambda: job(api, second)["status"] == "COMPLETED", timeout_s=20, what="job B to complete")


def created_job(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post(f"/{FUNCTION}/run", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = ok(http.get("/v1/jobs", params={"service": FUNCTION}))
    (found,) = [j for j in jobs if j["id"] == job_id]
    if found["status"] == "IN_QUEUE":
        found["reason"] = ok(http.get(f"/v1/queues/position/{job_id}"))["reason"]
    return found


def test_a_version_deployed_while_disabled_is_registered_and_starts_with_enable(api: httpx.Client) -> None:
    """
    1. Deploy version 1, disable the service, then deploy version 2 through `POST /v1/services`.
    2. The answer is DISABLED at version 2, and nothing runs: version 2 is DISABLED, version 1 INACTIVE (replaced).
    3. Enable: version 2 alone comes up and answers.
    """
    register(api, api_version_one)
    deploy(api, 1)
    wait_for_state(api, 1, "ACTIVE", ready=1)
    disable(api)

    answer = created(api.post("/v1/services", json=version_body(api, api_version_two)))
    assert (answer["state"], answer["disabled"], answer["version"], answer["replicas"]) == ("DISABLED", True, 2, [])
    assert_refused(api.get(VERSION_ENDPOINT))
    assert (get_deployment(api, 1)["state"], get_deployment(api, 1)["reason"]) == ("INACTIVE", "replaced by version 2")
    assert get_deployment(api, 2)["state"] == "DISABLED"

    enable(api)
    wait_for_state(api, 2, "ACTIVE", ready=1)
    assert set(answered_versions(api, 4)) == {2}
    assert get_deployment(api, 1)["state"] == "INACTIVE"


def test_a_service_with_nothing_deployed_is_refused_by_name_while_disabled(api: httpx.Client) -> None:
    register(api, api_version_one)
    error_of(api.get(VERSION_ENDPOINT), 503, "service_inactive")  # registered, never deployed
    assert disable(api)["state"] == "DISABLED"
    assert_refused(api.get(VERSION_ENDPOINT))
    enabled = enable(api)
    assert (enabled["state"], enabled["disabled"]) == ("INACTIVE", False)
    error_of(api.get(VERSION_ENDPOINT), 503, "service_inactive")  # enabled, with still nothing deployed


def test_disable_and_enable_need_the_owner_key(api: httpx.Client) -> None:
    register(api, api_version_one)
    token = created(api.post(f"/v1/functions/{FUNCTION}/tokens", json={"label": "caller"}))["token"]
    url = str(api.base_url).rstrip("/")
    for action in ("disable", "enable"):
        with_token = httpx.post(f"{url}{SERVICE}/{action}", headers={"authorization": f"Bearer {token}"})
        error_of(with_token, 403, "forbidden")
        error_of(httpx.post(f"{url}{SERVICE}/{action}"), 401, "unauthenticated")
    error_of(api.post("/v1/services/nope/disable"), 404, "service_not_found")
    assert ok(api.get(SERVICE))["disabled"] is False


def test_a_disabled_service_stays_disabled_across_a_restart(tmp_path: Path) -> None:
    """
    1. Deploy version 1 with 2 replicas and disable the service; stop the server.
    2. A new server on the same home starts no replica for it, and refuses its calls.
    3. Enable: version 1 comes back with 2 replicas and serves.
    """
    home = tmp_path / "home"
    with (
        run_server(home=home, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as api,
    ):
        register(api, api_version_one)
        deploy(api, 1, min_instances=2, max_instances=2)
        wait_for_state(api, 1, "ACTIVE", ready=2)
        disable(api)

    with (
        run_server(home=home, graceful_shutdown_s=2) as url,
        httpx.Client(base_url=url, headers=owner(url), timeout=HTTP_TIMEOUT) as api,
    ):
        service = ok(api.get(SERVICE))
        assert (service["state"], service["disabled"], service["replicas"]) == ("DISABLED", True, [])
        assert get_deployment(api, 1)["state"] == "DISABLED"
        assert_refused(api.get(VERSION_ENDPOINT))

        enable(api)
        wait_for_state(api, 1, "ACTIVE", ready=2)
        assert ok(api.get(VERSION_ENDPOINT))["version"] == 1


def test_disable_lets_a_call_in_flight_finish(api: httpx.Client, tmp_path: Path) -> None:
    """
    1. A call blocks in the replica; disable the service meanwhile: new calls are refused at once.
    2. Release the call: it answers 200, then the disable answers with the replica gone.
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
        disabling = pool.submit(httpx.post, f"{url}{SERVICE}/disable", headers=owner(url), timeout=HTTP_TIMEOUT)
        wait_until(lambda: api.get(VERSION_ENDPOINT).status_code == 503, timeout_s=5, what="calls to be refused")
        assert not call.done()
        release.touch()
        assert ok(call.result(timeout=10)) == "released"
        assert ok(disabling.result(timeout=10))["replicas"] == []
    wait_until(lambda: is_gone(pid), timeout_s=5, what="the replica to exit")


def test_the_time_limit_runs_on_while_disabled(api: httpx.Client) -> None:
    """
    1. Deploy `medium_lived` (time_limit="3s") and disable it at once.
    2. Once its 3 s have passed since the deploy, enable it: it does not start, it is INACTIVE with the reason.
    """
    url = str(api.base_url).rstrip("/")
    with fs.deploy(medium_lived, url=url)() as deployment:
        deployment.wait(timeout_s=30)
        expires_at = datetime.fromisoformat(deployment._info["expires_at"])
        deployment.disable()
        assert deployment.state == "DISABLED"
        wait_until(lambda: datetime.now(UTC) > expires_at, timeout_s=5, what="the time limit to pass")
        deployment.enable()
        assert (deployment.state, deployment.reason) == (
            "INACTIVE",
            f"time limit of 3s reached at {expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        assert not deployment._info["disabled"]


def test_disabled_in_the_middle_of_a_rollout_the_new_version_alone_comes_back(tmp_path: Path) -> None:
    """
    1. Version 1 of `gated_init` is ACTIVE; version 2 is DEPLOYING (its initializer waits for a file) to replace it.
    2. Disable: version 1 is INACTIVE (replaced by version 2), version 2 DISABLED.
    3. Open version 2's gate and enable: version 2 alone comes up.
    """
    first_gate, second_gate = tmp_path / "gate-1", tmp_path / "gate-2"
    first_gate.touch()
    with run_server(home=tmp_path / "home", graceful_shutdown_s=1) as url, fs.Client(url) as client:
        with fs.deploy(gated_init, url=url)(gate=str(first_gate)) as first:
            first.wait(timeout_s=30)
        with fs.deploy(gated_init, url=url)(gate=str(second_gate)) as second:
            assert second.state == "DEPLOYING"
            info = second.disable()._info
            assert [(v["version"], v["state"]) for v in info["versions"]] == [(1, "INACTIVE"), (2, "DISABLED")]
            assert info["version"] == 2
            second_gate.touch()
            second.enable().wait(timeout_s=30)
            assert second.hello() == "started"
            versions = client.get_service("gated_init")["versions"]
            assert [(v["version"], v["state"]) for v in versions] == [(1, "INACTIVE"), (2, "ACTIVE")]
