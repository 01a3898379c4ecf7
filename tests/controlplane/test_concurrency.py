"""`max_request_concurrency` is enforced by the gateway per replica, and an update changes it live."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from _auth import owner
from concurrency import concurrency

import fnserve as fs
from fnserve.sdk.loader import dumps_by_value
from fnserve.testing import wait_until

TIMEOUT = httpx.Timeout(30.0)
DEPLOYMENT = "/v1/deployments/functions/concurrency/versions/1"


def burst(url: str, calls: int, seconds: float) -> int:
    """`calls` calls at once, each `seconds` long; all must succeed. Returns the peak the replica saw."""
    with ThreadPoolExecutor(calls) as pool:
        responses = list(
            pool.map(
                lambda _: httpx.post(f"{url}/concurrency/work", json={"seconds": seconds}, timeout=TIMEOUT),
                range(calls),
            )
        )
    assert [r.status_code for r in responses] == [200] * calls, [r.text for r in responses]
    peak: int = httpx.post(f"{url}/concurrency/peak", timeout=TIMEOUT).json()
    return peak


def test_concurrency_limit_holds_and_changes_live(server_url: str) -> None:
    """1. Register the service and deploy one replica with max_request_concurrency 1.
    2. Six calls at once all succeed, and the replica never runs more than one at a time (the others wait in
       the gateway, not in the replica).
    3. PUT the deployment with max_request_concurrency 3, no restart: the next burst runs three at a time, on the
       same replica process."""
    with fs.Client(server_url) as client:
        sha = client.upload(dumps_by_value(concurrency, module_name=concurrency.__module__))
    headers = owner(server_url)
    body = {"spec": concurrency.spec.model_dump(mode="json"), "code": {"kind": "pickle", "sha256": sha}}
    assert httpx.post(f"{server_url}/v1/functions", json=body, headers=headers, timeout=TIMEOUT).status_code == 201
    spec = {"min_instances": 1, "max_instances": 1, "max_request_concurrency": 1}
    assert httpx.post(server_url + DEPLOYMENT, json=spec, headers=headers, timeout=TIMEOUT).status_code == 201

    def deployment() -> dict[str, Any]:
        info: dict[str, Any] = httpx.get(server_url + DEPLOYMENT, headers=headers, timeout=TIMEOUT).json()
        return info

    first = wait_until(lambda: (d := deployment())["state"] == "ACTIVE" and d, timeout_s=30, what="ACTIVE")
    pids = [r["pid"] for r in first["replicas"]]

    assert burst(server_url, 6, 0.2) == 1

    spec["max_request_concurrency"] = 3
    assert httpx.put(server_url + DEPLOYMENT, json=spec, headers=headers, timeout=TIMEOUT).status_code == 200
    assert burst(server_url, 6, 0.3) == 3
    assert [r["pid"] for r in deployment()["replicas"]] == pids
