"""Autoscaling over real processes: from zero up to the maximum under load and back to zero when idle, a cold
start answered; scale-downs that drain; the bounded waiting line (503) and per-endpoint request timeouts (504)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from autoscaled import elastic, narrow

import fnserve as fs
from fnserve.errors import SpecError
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("autoscaling-home"), graceful_shutdown_s=5) as server_url:
        for service in (elastic, narrow):
            with fs.deploy(service, url=server_url)() as deployment:
                deployment.wait(timeout_s=60)
        yield server_url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=owner(url), timeout=60) as client:
        yield client


def replicas(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    return list(http.get(f"/v1/services/{name}").json()["replicas"])


def running(http: httpx.Client, name: str) -> int:
    return sum(1 for replica in replicas(http, name) if replica["state"] in ("STARTING", "READY"))


def test_autoscaling_conflicts_with_a_fixed_replica_count() -> None:
    with pytest.raises(SpecError, match="both replicas=2 and autoscaling"):
        fs.service(name="both", replicas=2, autoscaling=fs.Autoscaling(max_replicas=3))(lambda: {})
    with pytest.raises(SpecError, match="max_replicas"):
        fs.Autoscaling(min_replicas=3, max_replicas=2)


def test_scales_from_zero_to_the_maximum_and_back_to_zero(http: httpx.Client) -> None:
    info = http.get("/v1/services/elastic").json()
    assert info["state"] == "ACTIVE"
    assert info["replicas"] == []  # min_replicas=0: nothing runs until a call comes
    started = time.monotonic()
    cold = http.post("/elastic/work", json={})
    assert cold.status_code == 200, cold.text
    cold_start_s = time.monotonic() - started
    assert replicas(http, "elastic")[0]["cold_start_ms"] > 0
    # Six slow calls at once, one call per replica: up to three replicas, never more.
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, running(http, "elastic"))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: http.post("/elastic/work", json={"seconds": 1.5}), range(6)))
    stop.set()
    watcher.join()
    assert [answer.status_code for answer in answers] == [200] * 6
    assert peak == 3
    assert len({answer.json() for answer in answers}) >= 2  # served by several processes
    wait_until(lambda: running(http, "elastic") == 0, timeout_s=30, what="scaling back to zero")
    assert http.get("/elastic/ping").status_code == 200  # scaled to zero is healthy
    again = http.post("/elastic/work", json={})
    assert again.status_code == 200
    assert cold_start_s < 30


def test_a_full_waiting_line_answers_503_with_the_numbers(http: httpx.Client) -> None:
    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(http.post, "/narrow/work", json={"seconds": 3})
        wait_until(lambda: replicas(http, "narrow")[0]["in_flight"] == 1, timeout_s=10, what="the first call")
        # Two more while the only slot is taken: one waits in the one-place line, the other is refused.
        later = [pool.submit(http.post, "/narrow/work", json={"seconds": 0}) for _ in range(2)]
        codes = sorted(call.result().status_code for call in later)
        assert codes == [200, 503]
        refusal = next(call.result() for call in later if call.result().status_code == 503)
        message = refusal.json()["error"]["message"]
        assert "max_queued_requests=1" in message
        assert "1 concurrent calls" in message
        assert busy.result().status_code == 200


def test_an_endpoint_past_its_request_timeout_answers_504(http: httpx.Client) -> None:
    started = time.monotonic()
    response = http.post("/narrow/quick", json={"seconds": 10})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "invocation_timeout"
    assert time.monotonic() - started < 5
    assert http.post("/narrow/quick", json={"seconds": 0}).json() == 0


def test_a_scale_down_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    from slow import slow

    with run_server(home=tmp_path / "home", graceful_shutdown_s=10) as server_url:
        with fs.deploy(slow, url=server_url)() as deployment:
            deployment.wait(timeout_s=60)
        with httpx.Client(base_url=server_url, headers=owner(server_url), timeout=60) as http:
            path = "/v1/deployments/functions/slow/versions/1"
            spec = {"min_instances": 2, "max_instances": 2, "max_request_concurrency": 1}
            assert http.put(path, json=spec).status_code == 200
            wait_until(lambda: ready(http) == 2, timeout_s=60, what="two replicas")
            with ThreadPoolExecutor(2) as pool:
                calls = [pool.submit(http.post, "/slow/sleep", json={"seconds": 2}) for _ in range(2)]
                wait_until(lambda: busy(http) == 2, timeout_s=10, what="both replicas busy")
                spec.update(min_instances=1, max_instances=1)
                assert http.put(path, json=spec).status_code == 200  # one busy replica must drain
                assert [call.result().status_code for call in calls] == [200, 200]
            wait_until(lambda: len(replicas(http, "slow")) == 1, timeout_s=30, what="the drained replica to stop")


def ready(http: httpx.Client) -> int:
    return sum(1 for replica in replicas(http, "slow") if replica["state"] == "READY")


def busy(http: httpx.Client) -> int:
    return sum(1 for replica in replicas(http, "slow") if replica["in_flight"] > 0)
