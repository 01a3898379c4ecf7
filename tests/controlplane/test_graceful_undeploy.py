"""Undeploying lets calls in flight finish (graceful, the default), or cuts them off when asked."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from _auth import owner
from slow import slow

import fnserve as fs
from fnserve.testing import wait_until


def in_flight(url: str) -> int:
    return sum(
        r["in_flight"] for r in httpx.get(f"{url}/v1/services/slow", headers=owner(url), timeout=10).json()["replicas"]
    )


@pytest.mark.parametrize(("graceful", "expected_status"), [(True, 200), (False, 502)])
def test_undeploy_graceful_lets_in_flight_call_finish(server_url: str, graceful: bool, expected_status: int) -> None:
    """
    1. Deploy `slow`; start a 1.5 s call in a thread and wait until the gateway shows it in flight.
    2. DELETE the deployment with graceful=true/false.
    3. Graceful: the call completes with 200 and only then do the replicas stop. Not graceful: it gets 502.
    """
    with fs.deploy(slow, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        version_id = deployment.refresh()._info["version_id"]
        function_id = deployment.service_id
    started = threading.Event()

    def call() -> httpx.Response:
        started.set()
        return httpx.post(f"{server_url}/slow/sleep", json={"seconds": 1.5}, timeout=10)

    with ThreadPoolExecutor(1) as pool:
        pending: Future[httpx.Response] = pool.submit(call)
        wait_until(lambda: started.is_set() and in_flight(server_url) == 1, timeout_s=5, what="the call in flight")
        undeployed = httpx.delete(
            f"{server_url}/v1/deployments/functions/{function_id}/versions/{version_id}",
            params={"graceful": str(graceful).lower()},
            headers=owner(server_url),
            timeout=30,
        )
        assert undeployed.status_code == 200
        assert undeployed.json()["state"] == "INACTIVE"
        response = pending.result(timeout=15)
    assert response.status_code == expected_status
    if graceful:
        assert response.json() == 1.5
    else:
        assert response.json()["error"]["code"] == "replica_crashed"
        assert "was stopped" in response.json()["error"]["message"]
