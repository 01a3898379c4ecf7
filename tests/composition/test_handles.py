"""Handles between services, over real processes: a graph (preprocess → model-a, model-b → combine) deployed at once
by `fs.deploy(combine)()`, answering through handles in sync and async code, streams, pinned versions, jobs, errors,
a replica killed under a call, cancellation reaching the leaf, and a call to a service not declared."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from composed import combine, model_a

import fnserve as fs
from fnserve.sdk.deploy import submit
from fnserve.sdk.loader import dumps_by_value
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, fs.Deployment]]:
    """One server for the module, with the four services of the graph deployed by one `fs.deploy`."""
    home = tmp_path_factory.mktemp("graph-home")
    with run_server(home=home, graceful_shutdown_s=2) as url, fs.deploy(combine, url=url)() as deployment:
        deployment.wait(timeout_s=60)
        yield url, deployment


def ready_pids(client: fs.Client, name: str) -> list[int]:
    return sorted(r["pid"] for r in client.get_service(name)["replicas"] if r["state"] == "READY")


def test_graph_deploys_every_service_it_uses_leaves_first(graph: tuple[str, fs.Deployment]) -> None:
    """
    1. `fs.deploy(combine)()` deployed combine and the three services it names as objects.
    2. Each is its own versioned service, ACTIVE, and combine's spec lists what it uses.
    3. The leaves were ACTIVE before combine was deployed (deployed_at order).
    """
    url, _ = graph
    with fs.Client(url) as client:
        services = {s["name"]: s for s in client.list_services()}
        assert {"preprocess", "model-a", "model-b", "narrow", "sleepy", "relay", "combine"} <= set(services)
        combined = client.get_service("combine")
        assert combined["state"] == "ACTIVE"
        leaves = [client.get_service(name) for name in ("preprocess", "model-a", "model-b")]
        assert all(leaf["state"] == "ACTIVE" for leaf in leaves)
        assert all(leaf["version"] == 1 for leaf in leaves)


def test_handles_answer_from_sync_and_async_code(graph: tuple[str, fs.Deployment]) -> None:
    """
    1. A sync endpoint (run in a thread) calls three services with `h.method(...)`.
    2. An async endpoint awaits them, two at once with asyncio.gather.
    3. Both see the same answers.
    """
    _, deployment = graph
    expected = {"cleaned": "hello big world", "a": {"model": "a", "words": 3}, "b": {"model": "b", "chars": 15}}
    for path in ("/sync", "/async"):
        answer = deployment.call(path, text="  Hello BIG World ")
        answer["a"].pop("pid")
        assert answer == expected


def test_many_calls_at_once_each_get_their_own_answer(graph: tuple[str, fs.Deployment]) -> None:
    """64 handle calls at once from async code, and 32 from 8 threads of a sync endpoint, over the replica's one
    connection: every answer goes to its own caller."""
    _, deployment = graph
    assert deployment.call("/fanout", n=64) is True
    assert deployment.call("/fanout-threads", n=32) is True


def test_stream_through_a_handle(graph: tuple[str, fs.Deployment]) -> None:
    """A streaming endpoint iterates over another service's stream: `async for` in async code, `for` in sync code."""
    _, deployment = graph
    assert "".join(deployment.call("/words", text="one two three")) == "ONE\nTWO\nTHREE\n"
    assert "".join(deployment.call("/words-sync", text="one two three")) == "one\ntwo\nthree\n"


def test_path_parameters_go_in_the_path(graph: tuple[str, fs.Deployment]) -> None:
    """`/items/{item_id}` (GET) is `.items(item_id=...)`: the server puts the argument in the path, as the client
    would; the other arguments stay arguments."""
    _, deployment = graph
    assert deployment.call("/item", item_id=4) == {"item_id": 4, "scaled": 40}


def test_the_request_id_and_deadline_reach_the_replica(graph: tuple[str, fs.Deployment]) -> None:
    """A replica of a service that uses others knows the request id of the call it serves (the one the client sees
    in X-Request-ID) and its deadline: what its handle calls carry on."""
    url, deployment = graph
    response = httpx.post(
        f"{url}/combine/call-facts",
        json={},
        headers={"authorization": f"Bearer {deployment._client.api_key}", "x-request-id": "trace-me-42"},
        timeout=10,
    )
    facts = response.json()
    assert facts["request_id"] == response.headers["x-request-id"] == "trace-me-42"
    assert 0 < facts["remaining_s"] <= 300
    response = httpx.post(
        f"{url}/combine/relay-facts",
        json={},
        headers={"authorization": f"Bearer {deployment._client.api_key}", "x-request-id": "trace-me-43"},
        timeout=10,
    )
    relayed = response.json()  # one hop further: relay's replica, called by combine's through a handle
    assert relayed["request_id"] == "trace-me-43"
    assert 0 < relayed["remaining_s"] < 300


def test_handle_calls_keep_to_the_target_concurrency_limit(graph: tuple[str, fs.Deployment]) -> None:
    """`narrow` takes one call at a time and lets none wait (max_ongoing_requests=1, max_queued_requests=0): of two
    handle calls at once, one runs and the other is refused with `no_replicas_available`, as over HTTP."""
    _, deployment = graph
    assert sorted(deployment.call("/two-at-once")) == ["held", "no_replicas_available"]


def test_a_handle_call_starts_a_service_scaled_to_zero(graph: tuple[str, fs.Deployment]) -> None:
    """`sleepy` runs no replica until called (min_replicas=0): a handle call wakes it, waits for its replica, and
    gets the answer, as a call through the gateway would."""
    url, deployment = graph
    with fs.Client(url) as client:
        assert ready_pids(client, "sleepy") == []
        pid = deployment.call("/wake")
        assert ready_pids(client, "sleepy") == [pid]


def test_a_submitted_job_gives_its_result(graph: tuple[str, fs.Deployment]) -> None:
    """`h.method.submit(...)` queues a job of the target; `.result()` waits for it (sync and async code)."""
    _, deployment = graph
    answer = deployment.call("/job", text="a b")
    assert answer["id"]
    assert answer["output"]["words"] == 2
    assert deployment.call("/ajob", text="abc") == {"model": "b", "chars": 3}


def test_the_target_error_crosses_with_its_code(graph: tuple[str, fs.Deployment]) -> None:
    """
    1. model-a raises ValueError: the handle caller catches FunctionError (the target's code), message and all.
    2. An argument the target does not take is refused by the server's validator, as over HTTP.
    3. A call to a service combine did not declare raises `forbidden`; uncaught, it reaches combine's own caller as
       403 `forbidden`.
    """
    url, deployment = graph
    assert deployment.call("/fail", message="bad input") == "caught function_error: ValueError: bad input"
    response = httpx.post(
        f"{url}/combine/undeclared",
        json={},
        headers={"authorization": f"Bearer {deployment._client.api_key}"},
        timeout=10,
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert "secret-service" in error["message"]
    assert error["details"]["service"] == "secret-service"


def test_killed_downstream_replica_fails_only_the_calls_in_flight(
    graph: tuple[str, fs.Deployment], tmp_path: Path
) -> None:
    """
    1. A call through combine → model-a sleeps in model-a (a marker file names the replica's pid).
    2. That replica is SIGKILLed: the call in flight fails with model-a's `replica_crashed`, cleanly (an answer, not
       a hang), and combine's replica lives on.
    3. Calls through combine to the other services go on; a replacement of model-a comes up, and the next calls
       through combine to it succeed.
    """
    url, deployment = graph
    marker = tmp_path / "slow-pid"
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["answer"] = deployment.call("/slow", seconds=30, marker=str(marker))
        except fs.errors.FnserveError as exc:
            outcome["error"] = exc

    with fs.Client(url) as client:
        combine_pids = ready_pids(client, "combine")
        caller = threading.Thread(target=call)
        caller.start()
        wait_until(marker.exists, timeout_s=10)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        caller.join(timeout=10)
        assert not caller.is_alive()
        error = outcome["error"]
        assert error.code == "replica_crashed"
        assert error.details["service"] == "model-a"
        assert ready_pids(client, "combine") == combine_pids
        assert deployment.call("/item", item_id=1)["scaled"] == 10  # calls to the other services never noticed
        wait_until(lambda: len(ready_pids(client, "model-a")) >= 1, timeout_s=30)
        answer = deployment.call("/sync", text="after the crash")
        assert answer["a"]["words"] == 3


@pytest.mark.parametrize("path", ["/chain", "/chain-sync", "/chain-deep"])
def test_client_disconnect_cancels_the_leaf(graph: tuple[str, fs.Deployment], tmp_path: Path, path: str) -> None:
    """
    1. A client calls combine, which (in async code, or in a thread) calls model-b's endpoint that waits (or calls
       relay, which calls it: a chain of three replicas).
    2. Once the leaf started, the client disconnects.
    3. The cancel travels client → gateway → combine's replica → its handle call → model-b's replica: the leaf
       sees CancelledError (its marker file) within a few seconds.
    """
    url, deployment = graph
    started, cancelled = tmp_path / "started", tmp_path / "cancelled"
    body = orjson.dumps({"started": str(started), "cancelled": str(cancelled)})
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=10) as sock:  # a client that leaves when we say so
        sock.sendall(
            f"POST /combine{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {deployment._client.api_key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(started.exists, timeout_s=10)
        assert not cancelled.exists()
    wait_until(cancelled.exists, timeout_s=10)


def test_handle_from_a_client_process(graph: tuple[str, fs.Deployment]) -> None:
    """Outside a replica, `fs.handle` calls over HTTP with the Python client: a call, a stream, a job, a pin."""
    url, _ = graph
    with fs.handle("model-a", url=url) as handle:
        assert handle.predict(text="a b c")["words"] == 3
        assert list(handle.tokens(text="x y")) == ["x", "y"]
        assert handle.predict.submit(text="q").result(timeout_s=20)["words"] == 1
        with pytest.raises(fs.errors.FunctionError, match="ValueError: no"):
            handle.fail(message="no")
    with handle.options(version=1) as pinned:
        assert pinned.predict(text="z")["model"] == "a"


def test_handle_from_a_client_holding_only_a_token(graph: tuple[str, fs.Deployment]) -> None:
    """A caller with a service token (no owner key, so no /v1) gets the endpoints from the service's public docs and
    calls with its token; the token of another service is refused."""
    url, _ = graph
    with fs.Client(url) as client:
        token = client.create_token("model-a")["token"]
        other = client.create_token("model-b")["token"]
    with fs.handle(model_a, url=url, api_key=token) as handle:
        assert handle.predict(text="one two")["words"] == 2
        assert list(handle.tokens(text="x y z")) == ["x", "y", "z"]
    with fs.handle("model-a", url=url, api_key=other) as wrong, pytest.raises(fs.errors.Forbidden):
        wrong.predict(text="no")


@pytest.mark.anyio
async def test_handle_from_async_client_code(graph: tuple[str, fs.Deployment]) -> None:
    """The same handle awaited in async code, and a stream iterated with `async for`."""
    url, _ = graph
    async with fs.handle(model_a, url=url) as handle:
        assert (await handle.predict(text="a b"))["words"] == 2
        assert [chunk async for chunk in handle.tokens(text="p q r")] == ["p", "q", "r"]


def test_pinned_version_and_the_default_split(graph: tuple[str, fs.Deployment]) -> None:
    """
    1. A second version of model-a is deployed beside the first (keep_old): traffic splits between them.
    2. `h.options(version=1)` reaches version 1 only, `version=2` version 2 only.
    3. A version that is not deployed is a NotFound naming the deployed ones.
    """
    url, deployment = graph
    with fs.Client(url) as client:
        second = submit(
            model_a,
            client,
            code_kind="pickle",
            code=dumps_by_value(model_a, module_name=model_a.__module__),
            keep_old=True,
        )
        second.wait(timeout_s=60)
        assert second._info["version"] == 2
        assert ready_pids(client, "model-a") == [deployment.call("/pinned", text="x", version=2)["pid"]]
        by_version = [{deployment.call("/pinned", text="x", version=v)["pid"] for _ in range(4)} for v in (1, 2)]
        assert all(len(pids) == 1 for pids in by_version)  # each version has one replica
        assert by_version[0] != by_version[1]
        with pytest.raises(fs.errors.NotFound, match="no deployed version 7"):
            deployment.call("/pinned", text="x", version=7)
