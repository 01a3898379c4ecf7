"""Dynamic batching (`@fs.batch`) over real replicas: concurrent calls run as one call of the function, and each
caller gets its own result, its own error, or its own stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from _auth import owner
from batched import Batched, batched_fn

import fnserve as fs
from fnserve.auth import in_process_key
from fnserve.errors import SpecError
from fnserve.testing import run_server

TIMEOUT = httpx.Timeout(30.0)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server with both batched services deployed, for the whole module."""
    with run_server(home=tmp_path_factory.mktemp("batching-home"), graceful_shutdown_s=2) as url:
        for service in (Batched, batched_fn):
            with fs.deploy(service, url=url)() as deployment:
                deployment.wait(timeout_s=30)
        yield url


def burst(url: str, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every call at once, each from its own thread; the responses in the order of `bodies`."""
    with httpx.Client(timeout=TIMEOUT) as client, ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: client.post(url + path, json=body), bodies))


def sizes(url: str, service: str, name: str = "") -> list[int]:
    response = httpx.post(f"{url}/{service}/sizes", json={"name": name} if name else {}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    value: list[int] = response.json()
    return value


def test_concurrent_calls_form_batches_and_each_caller_gets_its_own_result(url: str) -> None:
    """1. 32 calls of the sync /double at once. 2. Each caller gets twice its own x. 3. The function ran fewer times
    than there were calls: batches of more than one, all 32 calls in them."""
    sizes(url, "batched", "double")
    responses = burst(url, "/batched/double", [{"x": index} for index in range(32)])
    assert [r.status_code for r in responses] == [200] * 32, [r.text for r in responses]
    assert [r.json() for r in responses] == [2 * index for index in range(32)]
    ran = sizes(url, "batched", "double")
    assert sum(ran) == 32
    assert max(ran) > 1
    assert all(size <= 16 for size in ran)


def test_async_batches_take_each_callers_arguments_and_defaults(url: str) -> None:
    """An async function gets a list per parameter: callers that leave `by` out get its default, 3."""
    sizes(url, "batched", "scale")
    bodies: list[dict[str, Any]] = [{"x": i, "by": i % 3} if i % 2 else {"x": i} for i in range(16)]
    responses = burst(url, "/batched/scale", bodies)
    assert [r.json() for r in responses] == [i * (i % 3 if i % 2 else 3.0) for i in range(16)]
    assert max(sizes(url, "batched", "scale")) > 1


def test_function_service_batches_with_shared_initializer_values(url: str) -> None:
    """In a function service, the parameters that are no lists come from the initializer's dict, once per batch; an
    `@fs.batch` stacked above the endpoint decorator gives the same endpoint."""
    sizes(url, "batched_fn")
    responses = burst(url, "/batched_fn/add", [{"x": index} for index in range(16)])
    assert [r.json() for r in responses] == [index + 100 for index in range(16)]
    assert max(sizes(url, "batched_fn")) > 1
    responses = burst(url, "/batched_fn/concat", [{"a": str(index), "b": "!"} for index in range(8)])
    assert [r.json() for r in responses] == [f"{index}!" for index in range(8)]


def test_a_bad_item_gets_its_own_422_and_stays_out_of_the_batch(url: str) -> None:
    sizes(url, "batched", "double")
    bodies: list[dict[str, Any]] = [{"x": index} for index in range(8)] + [{"x": "not a number"}, {}]
    responses = burst(url, "/batched/double", bodies)
    assert [r.status_code for r in responses] == [200] * 8 + [422, 422]
    assert responses[8].json()["error"]["code"] == "validation_error"
    assert [r.json() for r in responses[:8]] == [2 * index for index in range(8)]
    assert sum(sizes(url, "batched", "double")) == 8


def test_an_exception_returned_for_one_item_fails_that_caller_alone(url: str) -> None:
    sizes(url, "batched", "picky")
    responses = burst(url, "/batched/picky", [{"x": index - 1} for index in range(12)])
    assert responses[0].status_code == 500
    assert responses[0].json()["error"]["code"] == "function_error"
    assert responses[0].json()["error"]["message"] == "ValueError: -1 is negative"
    assert [r.json() for r in responses[1:]] == list(range(11))
    assert max(sizes(url, "batched", "picky")) > 1


def test_an_exception_raised_by_the_function_fails_its_whole_batch(url: str) -> None:
    """The caller of 13 and every caller batched with it get the error; callers in other batches do not."""
    sizes(url, "batched", "explode")
    responses = burst(url, "/batched/explode", [{"x": index} for index in range(8, 24)])
    failed = [index for index, r in zip(range(8, 24), responses, strict=True) if r.status_code != 200]
    assert 13 in failed
    for index, response in zip(range(8, 24), responses, strict=True):
        if index in failed:
            assert response.status_code == 500
            assert response.json()["error"]["message"] == "RuntimeError: unlucky batch"
        else:
            assert response.json() == index
    assert len(failed) in sizes(url, "batched", "explode")


def test_a_result_of_the_wrong_length_names_both_lengths(url: str) -> None:
    response = httpx.post(f"{url}/batched/short", json={"x": 1}, timeout=TIMEOUT)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "function_error"
    assert "returned 0 results for a batch of 1 calls" in error["message"]


def test_batch_wait_timeout_bounds_a_lone_calls_latency(url: str) -> None:
    """A lone call of /lone (max 64, waiting 0.3 s) runs alone once the 0.3 s are over, not later."""
    sizes(url, "batched", "lone")
    started = time.perf_counter()
    response = httpx.post(f"{url}/batched/lone", json={"x": 7}, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    assert response.json() == 7
    assert 0.3 <= elapsed < 1.5
    assert sizes(url, "batched", "lone") == [1]


@pytest.mark.parametrize("path", ["/countdown", "/letters"], ids=["sync-generator", "async-generator"])
def test_streaming_batches_end_each_callers_stream_on_its_own(url: str, path: str) -> None:
    """A generator yields a list per step: each caller streams its own elements, and its stream ends at its
    StopIteration while the others go on."""
    name = path.removeprefix("/")
    sizes(url, "batched", name)
    if path == "/countdown":
        responses = burst(url, "/batched/countdown", [{"n": n} for n in range(1, 9)])
        assert [r.text for r in responses] == ["".join(f"{step}\n" for step in range(n)) for n in range(1, 9)]
    else:
        words = ["a", "bb", "fnserve", "batch", "", "xyz"]
        responses = burst(url, "/batched/letters", [{"word": word} for word in words])
        assert [r.text for r in responses] == words
    assert all(r.status_code == 200 for r in responses)
    assert max(sizes(url, "batched", name)) > 1


def test_streaming_batch_errors_reach_their_callers(url: str) -> None:
    """1. An Exception element ends that caller's stream with an error event; the others go on. 2. The generator
    raising ends every stream still open in its batch with the error, after the chunks they had."""
    sizes(url, "batched", "flaky")
    responses = burst(url, "/batched/flaky", [{"n": n} for n in (2, 3, 4)])
    assert [r.status_code for r in responses] == [200] * 3
    assert responses[0].text == "2\n2\n3\n"
    assert responses[1].text.startswith("3\nevent: error\n")
    assert '"code":"function_error","message":"ValueError: 3 is odd"' in responses[1].text
    assert responses[2].text == "4\n4\n5\n"

    responses = burst(url, "/batched/flaky", [{"n": n} for n in (2, 13, 4)])
    assert "ValueError: 13 is odd" in responses[1].text
    if (
        sizes(url, "batched", "flaky")[-1] == 3
    ):  # all three in one batch (0.2 s to gather them): the raise fails 2 and 4
        for response, n in ((responses[0], 2), (responses[2], 4)):
            assert response.text.startswith(f"{n}\n{n}\nevent: error\n")
            assert "RuntimeError: unlucky stream" in response.text


def test_python_client_calls_a_batched_endpoint_with_one_item(url: str) -> None:
    with fs.get_deployment("batched", url=url, api_key=in_process_key(url)) as deployment:
        assert deployment.double(x=4) == 8
        assert list(deployment.countdown(n=3)) == ["0\n", "1\n", "2\n"]


def test_queued_jobs_of_a_batched_endpoint_are_batched_too(url: str) -> None:
    """Jobs reach the replica as calls, so the dispatcher's concurrent jobs join batches like synchronous calls."""
    sizes(url, "batched", "double")
    with fs.get_deployment("batched", url=url, api_key=in_process_key(url)) as deployment:
        jobs = [deployment.submit("/double", x=index) for index in range(12)]
        assert [job.result(timeout_s=20) for job in jobs] == [2 * index for index in range(12)]
    ran = sizes(url, "batched", "double")
    assert sum(ran) == 12
    assert max(ran) > 1


def test_set_max_batch_size_changes_batches_live(url: str) -> None:
    """1. /tune calls `self.double.set_max_batch_size(2)` in the replica. 2. A burst of 12 runs in batches of at most
    2. 3. Back to 16: batches larger than 2 again."""
    tune = f"{url}/batched/tune"
    assert httpx.post(tune, json={"max_batch_size": 2, "batch_wait_timeout_s": 0.05}, timeout=TIMEOUT).is_success
    sizes(url, "batched", "double")
    responses = burst(url, "/batched/double", [{"x": index} for index in range(12)])
    assert [r.json() for r in responses] == [2 * index for index in range(12)]
    ran = sizes(url, "batched", "double")
    assert max(ran) == 2
    assert sum(ran) == 12
    assert httpx.post(tune, json={"max_batch_size": 16, "batch_wait_timeout_s": 0.05}, timeout=TIMEOUT).is_success
    burst(url, "/batched/double", [{"x": index} for index in range(12)])
    assert max(sizes(url, "batched", "double")) > 2


def test_metrics_show_batch_sizes_and_waits_per_endpoint(url: str) -> None:
    burst(url, "/batched/double", [{"x": index} for index in range(16)])
    labels = 'service="batched",endpoint="POST /double"'

    # A batch's BATCH frame goes to the server before the batch runs, so before any of its results.
    text = httpx.get(f"{url}/metrics", headers=owner(url), timeout=TIMEOUT).text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    batches = int(lines[f"fnserve_batch_size_count{{{labels}}}"])
    calls = float(lines[f"fnserve_batch_size_sum{{{labels}}}"])
    assert calls / batches > 1
    assert int(lines[f"fnserve_batch_wait_seconds_count{{{labels}}}"]) == batches
    assert f'fnserve_batch_size_bucket{{{labels},le="+Inf"}}' in lines
    assert 'fnserve_batch_size_count{service="batched",endpoint="POST /sizes"}' not in lines


def test_batching_replica_takes_enough_calls_to_fill_its_batches() -> None:
    """The gateway's default slot limit for a service with batched endpoints is twice its largest batch."""
    assert Batched.spec.default_max_ongoing_requests == 128
    assert batched_fn.spec.default_max_ongoing_requests == 32


def test_max_ongoing_requests_below_max_batch_size_is_warned_about() -> None:
    class Small:
        @fs.endpoint("/f")
        @fs.batch(max_batch_size=32)
        def f(self, x: list[int]) -> list[int]:
            return x

    with pytest.warns(UserWarning, match=r"max_ongoing_requests=4 .* max_batch_size=32"):
        small = fs.service(max_ongoing_requests=4)(Small)

    assert small.spec.default_max_ongoing_requests == 4


def test_batched_spec_shows_one_item() -> None:
    """Callers, the docs and validation see one item: `x: int`, returning an int, with the batch options."""
    spec = next(e for e in Batched.spec.endpoints if e.path == "/scale")
    assert {name: p.type for name, p in spec.parameters.items()} == {"x": "float", "by": "float"}
    assert spec.parameters["by"].default == 3.0
    assert spec.return_type == "float"
    assert spec.batch is not None
    assert (spec.batch.max_batch_size, spec.batch.batch_wait_timeout_s) == (8, 0.05)
    assert spec.arguments_schema is not None
    assert spec.arguments_schema["properties"]["x"]["type"] == "number"


def test_batched_functions_stay_plain_callables() -> None:
    @fs.batch
    def double(x: list[int]) -> list[int]:
        return [2 * value for value in x]

    assert double([1, 2]) == [2, 4]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be an int from 1 to 10000, got 0"),
        ({"batch_wait_timeout_s": -1}, "batch_wait_timeout_s must be seconds from 0 to 60, got -1"),
    ],
)
def test_bad_batch_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        fs.batch(**options)


def test_batched_endpoints_must_name_their_parameters() -> None:
    def named() -> dict[str, Any]:
        return {}

    svc = fs.service(named)
    with pytest.raises(SpecError, match=r"takes \*\*rest; name its parameters"):

        @svc.endpoint("/f")
        @fs.batch
        def f(x: list[int], **rest: Any) -> list[int]:
            return x

    class Unnamed:
        @fs.endpoint("/g")
        @fs.batch
        def g(self, x: list[int], k: int) -> list[int]:
            return x

    with pytest.raises(SpecError, match="parameter 'k' that is not a list and has no default"):
        fs.service(Unnamed)
