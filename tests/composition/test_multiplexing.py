"""Model multiplexing over real HTTP to real replicas: calls naming a model go to the replica that holds it, a new
model loads on the less loaded replica, the least recently used model is dropped (and loaded again when asked for),
concurrent calls for a loading model share its one load, and status, the service API and /metrics say which replica
holds what. The app (tests/apps/multiplexed.py) counts its loads per replica and answers with its pid."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from _auth import owner
from _cli import fnserve
from _deploy import deployed
from model_id_only import model_id_only
from multiplexed import Adapters, multiplexed

import fnserve as fs
from fnserve.client.api import Client
from fnserve.testing import wait_until


@pytest.fixture
def service(server_url: str) -> Iterator[fs.Deployment]:
    with deployed(multiplexed, server_url) as deployment:
        yield deployment


def call(url: str, model_id: str, path: str = "/predict", header: str = "fnserve-model-id", **body: Any) -> Any:
    response = httpx.post(f"{url}/multiplexed{path}", json=body, headers={header: model_id}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def held(client: Client) -> dict[int, list[str]]:
    """pid → the models that replica holds, from the service API."""
    return {replica["pid"]: replica["models"] for replica in client.get_service("multiplexed")["replicas"]}


def in_flight(client: Client) -> int:
    return sum(replica["in_flight"] for replica in client.get_service("multiplexed")["replicas"])


def call_while_busy(url: str, client: Client, busy_model_id: str, model_id: str, gate: Path) -> Any:
    """Call for `model_id` while a call for `busy_model_id` stays in flight (on the replica that holds it)."""
    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(call, url, busy_model_id, "/hold", until=str(gate))
        wait_until(lambda: in_flight(client) == 1, timeout_s=10)
        answer = call(url, model_id)
        gate.touch()
        holding.result(timeout=10)
    return answer


def test_repeated_model_ids_go_to_the_replica_that_holds_them(
    server_url: str, client: Client, service: fs.Deployment, tmp_path: Path
) -> None:
    """1. m1 loads on one replica (X); called again and again, it is served there and loaded once.
    2. m2 loads on the other replica (Y: it holds fewer models), and stays there.
    3. While a call of m1 holds X busy, a new model m3 loads on Y, the less loaded (Y now holds its 2: m2, m3).
    4. m4 loads on X (fewer models); then m2 is used, so m3 is Y's least recently used: m5, loaded on Y while X is
       held busy, drops m3.
    5. m3, asked for again while X is busy, loads again on Y (its second load there, counted) and drops m2.
    6. The service API, `fnserve status` and /metrics show each replica's models, loads and evictions."""
    first = call(server_url, "m1")
    x = first["pid"]
    assert (first["model_id"], first["model"], first["loads"]) == ("m1", "m1", 1)
    for _ in range(4):
        again = call(server_url, "m1")
        assert (again["pid"], again["loads"]) == (x, 1)

    second = call(server_url, "m2")
    y = second["pid"]
    assert y != x
    assert second["loads"] == 1
    assert call(server_url, "m2")["pid"] == y

    third = call_while_busy(server_url, client, "m1", "m3", tmp_path / "gate-1")
    assert (third["pid"], third["loads"]) == (y, 1)
    assert held(client) == {x: ["m1"], y: ["m2", "m3"]}

    assert call(server_url, "m4")["pid"] == x
    assert call(server_url, "m2")["pid"] == y  # m3 is now Y's least recently used
    fifth = call_while_busy(server_url, client, "m4", "m5", tmp_path / "gate-2")
    assert (fifth["pid"], fifth["loads"]) == (y, 1)
    assert held(client) == {x: ["m1", "m4"], y: ["m2", "m5"]}

    reloaded = call_while_busy(server_url, client, "m4", "m3", tmp_path / "gate-3")
    assert (reloaded["pid"], reloaded["loads"]) == (y, 2)
    assert held(client) == {x: ["m1", "m4"], y: ["m5", "m3"]}

    status = fnserve("status", "multiplexed", url=server_url)
    assert status.returncode == 0, status.stderr
    assert "MODELS" in status.stdout
    assert "m1, m4" in status.stdout
    assert "m5, m3" in status.stdout
    metrics = httpx.get(f"{server_url}/metrics", headers=owner(server_url), timeout=10).text
    by_family: dict[str, list[int]] = {}
    for line in metrics.splitlines():
        if line.startswith("fnserve_multiplexed_") and 'service="multiplexed"' in line:
            by_family.setdefault(line.split("{")[0], []).append(int(line.rsplit(" ", 1)[1]))
    assert sorted(by_family["fnserve_multiplexed_models"]) == [2, 2]
    assert sorted(by_family["fnserve_multiplexed_model_loads_total"]) == [2, 4]  # X: m1, m4; Y: m2, m3, m5, m3
    assert sorted(by_family["fnserve_multiplexed_model_evictions_total"]) == [0, 2]  # Y dropped m3, then m2


def test_concurrent_calls_for_a_loading_model_share_its_one_load(
    server_url: str, client: Client, service: fs.Deployment, tmp_path: Path
) -> None:
    """1. Four calls for a model whose load waits on a file are all sent to the replica loading it.
    2. Once the file exists they all answer from that replica, which loaded the model once."""
    model_id = f"gated:{tmp_path / 'loaded'}"
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(call, server_url, model_id) for _ in range(4)]
        wait_until(lambda: in_flight(client) == 4, timeout_s=10)
        busy = [replica for replica in client.get_service("multiplexed")["replicas"] if replica["in_flight"]]
        assert [replica["in_flight"] for replica in busy] == [4]
        assert busy[0]["models"] == [model_id]  # reported while it loads
        (tmp_path / "loaded").touch()
        answers = [future.result(timeout=10) for future in calls]
    assert {(answer["pid"], answer["loads"]) for answer in answers} == {(busy[0]["pid"], 1)}


def test_the_model_id_reaches_sync_endpoints_streams_and_ray_serves_header(
    server_url: str, client: Client, service: fs.Deployment
) -> None:
    """Ray Serve's `serve_multiplexed_model_id` header works as `fnserve-model-id` does; a sync endpoint (in a pool
    thread) and a sync generator see the call's model id; the Python client and `fnserve invoke --model-id` send it;
    a call naming no model sees ""."""
    ray = call(server_url, "ray-1", "/predict_sync", header="serve_multiplexed_model_id")
    assert (ray["model_id"], ray["model"], ray["loads"]) == ("ray-1", "ray-1", 1)
    assert call(server_url, "ray-1", "/predict_sync")["pid"] == ray["pid"]

    assert service.options(multiplexed_model_id="py-1").predict()["model_id"] == "py-1"
    assert service.predict_sync(_model_id="py-2")["model_id"] == "py-2"
    assert list(service.options(multiplexed_model_id="py-3").stream(count=2)) == ["py-3\n", "py-3\n"]
    with pytest.raises(TypeError, match="not to jobs"):
        service.options(multiplexed_model_id="py-4").predict.submit()

    invoked = fnserve("invoke", "multiplexed", "/predict", "--model-id", "cli-1", url=server_url)
    assert invoked.returncode == 0, invoked.stderr
    assert '"cli-1"' in invoked.stdout

    response = httpx.post(f"{server_url}/multiplexed/predict", json={}, timeout=10)
    assert response.status_code == 500  # the loader needs an id, and this call named none
    assert "needs a model id" in response.json()["error"]["message"]


def test_a_model_id_too_long_or_with_a_job_is_refused(server_url: str, service: fs.Deployment) -> None:
    response = httpx.post(
        f"{server_url}/multiplexed/predict", json={}, headers={"fnserve-model-id": "x" * 300}, timeout=10
    )
    assert response.status_code == 400
    assert "at most 256 characters" in response.json()["error"]["message"]
    response = httpx.post(
        f"{server_url}/multiplexed/predict",
        json={},
        headers={"fnserve-model-id": "m1", "fnserve-poll-seconds": "1"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "not to jobs" in response.json()["error"]["message"]
    response = httpx.post(
        f"{server_url}/multiplexed/run",
        json={"endpoint": "/predict", "input": {}},
        headers={"serve_multiplexed_model_id": "m1"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "not to jobs" in response.json()["error"]["message"]


def test_a_class_service_scaled_to_zero_gets_the_model_id_of_the_call_that_starts_it(
    server_url: str, client: Client
) -> None:
    """1. The first call, naming m-a, starts the only replica, whose method loader loads m-a.
    2. m-a again is not loaded again; m-b drops m-a (one model per replica); m-a then loads a second time."""
    with deployed(cast("fs.Service[Any]", Adapters), server_url):  # mypy keeps a decorated class's own type

        def generate(model_id: str) -> Any:
            response = httpx.post(
                f"{server_url}/adapters/generate",
                json={"prompt": "hi"},
                headers={"serve_multiplexed_model_id": model_id},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            return response.json()

        first = generate("m-a")
        assert first == {"model_id": "m-a", "model": "adapter m-a", "loads": 1, "prompt": "hi"}
        assert generate("m-a")["loads"] == 1
        assert generate("m-b")["loads"] == 1
        assert [replica["models"] for replica in client.get_service("adapters")["replicas"]] == [["m-b"]]
        assert generate("m-a")["loads"] == 2


def test_a_service_with_no_loader_is_passed_no_model_id(server_url: str, client: Client) -> None:
    """Its calls pay nothing for multiplexing: the header is not looked for, the endpoint sees "", the replica's log
    says why, and status shows no MODELS column."""
    with deployed(model_id_only, server_url):
        response = httpx.post(f"{server_url}/model-id-only/which", json={}, headers={"fnserve-model-id": "m1"})
        assert response.status_code == 200, response.text
        assert response.json() == ""
        info = client.get_service("model-id-only")
        assert [replica["models"] for replica in info["replicas"]] == [[]]
        status = fnserve("status", "model-id-only", url=server_url)
        assert status.returncode == 0, status.stderr
        assert "MODELS" not in status.stdout
        logs = Path(info["logs_dir"])
        wait_until(
            lambda: any("no @fs.multiplexed loader" in log.read_text() for log in logs.glob("*.log")), timeout_s=5
        )
