"""A service that runs nothing says so: a call under its route prefix answers 503 `service_inactive` with its state,
the reason and how to start it again, rather than a 404. Paths no stopped service owns stay 404."""

from __future__ import annotations

from typing import Any

import httpx
from _deploy import deployed
from lifecycle_versions import prefix_taker, version_moved, version_one

import fnserve as fs

HTTP_TIMEOUT = 10


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_a_torn_down_service_answers_service_inactive_with_how_to_start_it_again(
    server_url: str, client: fs.Client
) -> None:
    """
    1. Deploy `lifecycle_versions` version 1, then tear it down.
    2. Its endpoint, its `/ping` and its job routes answer 503 service_inactive: state INACTIVE, reason "torn down",
       and the commands that start it again.
    3. The command it names (`fnserve rollback lifecycle_versions --to 1`, here through the client) brings it back.
    """
    with deployed(version_one, server_url) as deployment:
        deployment.teardown()

    url = f"{server_url}/lifecycle_versions"
    error = error_of(httpx.get(f"{url}/version", timeout=HTTP_TIMEOUT), 503, "service_inactive")
    assert error["details"] == {
        "service": "lifecycle_versions",
        "version": 1,
        "state": "INACTIVE",
        "reason": "torn down",
    }
    assert error["message"] == (
        "Service 'lifecycle_versions' is not running: version 1 is INACTIVE (torn down). Deploy it again with "
        "`fnserve deploy`, or start version 1 again with `fnserve rollback lifecycle_versions --to 1`"
    )
    error_of(httpx.get(f"{url}/ping", timeout=HTTP_TIMEOUT), 503, "service_inactive")
    error_of(httpx.post(f"{url}/run", json={"endpoint": "/version"}, timeout=HTTP_TIMEOUT), 503, "service_inactive")

    client.rollback("lifecycle_versions", to=1)
    fs.get_deployment("lifecycle_versions", url=server_url, wait=30).close()
    assert httpx.get(f"{url}/version", timeout=HTTP_TIMEOUT).json()["version"] == 1


def test_paths_that_no_stopped_service_owns_stay_404(server_url: str, client: fs.Client) -> None:
    """
    1. A path no service ever had: 404 not_found.
    2. `lifecycle_versions` moves to another route prefix (version 3 at /moved_versions): its old prefix is a 404,
       not `service_inactive`, since the service runs.
    3. Torn down, it answers service_inactive at its new prefix; another service then takes its old prefix and
       serves there.
    """
    error_of(httpx.get(f"{server_url}/never_deployed/x", timeout=HTTP_TIMEOUT), 404, "not_found")
    with deployed(version_one, server_url), deployed(version_moved, server_url) as moved:
        error_of(httpx.get(f"{server_url}/lifecycle_versions/version", timeout=HTTP_TIMEOUT), 404, "not_found")
        assert httpx.get(f"{server_url}/moved_versions/version", timeout=HTTP_TIMEOUT).json()["version"] == 3
        moved.teardown()

    error = error_of(httpx.get(f"{server_url}/moved_versions/version", timeout=HTTP_TIMEOUT), 503, "service_inactive")
    assert error["details"]["version"] == 2
    with deployed(prefix_taker, server_url):
        assert httpx.get(f"{server_url}/lifecycle_versions/version", timeout=HTTP_TIMEOUT).json() == "taken"
