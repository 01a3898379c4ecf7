"""Jobs over HTTP against a real server (docs/JOBS.md): submit, poll, every state, cancel, retry, backpressure,
202-and-poll on the synchronous path, and a replica killed mid-job."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _auth import owner
from jobs import bounded, jobs

import fnserve as fs
from fnserve.testing import run_server, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One server with `jobs` (2 replicas) and `bounded` deployed; the log folder `/record` writes to."""
    log_dir = tmp_path_factory.mktemp("runs")
    with run_server(home=tmp_path_factory.mktemp("jobs-home"), graceful_shutdown_s=2) as url:
        with httpx.Client(base_url=url, headers=owner(url), timeout=30) as http:
            with fs.deploy(jobs, url=url)(log_dir=str(log_dir)) as deployment:
                deployment.wait(timeout_s=60)
            with fs.deploy(bounded, url=url)() as deployment:
                deployment.wait(timeout_s=60)
            set_concurrency(http, "jobs", replicas=2, concurrency=8)
            set_concurrency(http, "bounded", replicas=1, concurrency=1)
        yield url, log_dir


@pytest.fixture
def http(served: tuple[str, Path]) -> Iterator[httpx.Client]:
    url, _ = served
    with httpx.Client(base_url=url, headers=owner(url), timeout=30) as client:
        yield client


def set_concurrency(http: httpx.Client, name: str, *, replicas: int, concurrency: int) -> None:
    spec = {"min_instances": replicas, "max_instances": replicas, "max_request_concurrency": concurrency}
    response = http.put(f"/v1/deployments/functions/{name}/versions/1", json=spec)
    assert response.status_code == 200, response.text
    wait_until(lambda: ready_replicas(http, name) == replicas, timeout_s=60, what=f"{replicas} replicas of {name}")


def ready_replicas(http: httpx.Client, name: str) -> int:
    info = http.get(f"/v1/services/{name}").json()
    return sum(1 for replica in info["replicas"] if replica["state"] == "READY")


def submit(http: httpx.Client, endpoint: str, prefix: str = "/jobs", **body: Any) -> str:
    response = http.post(f"{prefix}/run", json={"endpoint": endpoint, **body})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "IN_QUEUE"
    return str(answer["id"])


def status(http: httpx.Client, job_id: str, prefix: str = "/jobs", wait_s: float = 0) -> dict[str, Any]:
    response = http.get(f"{prefix}/status/{job_id}", params={"wait_s": wait_s})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def finished(http: httpx.Client, job_id: str, prefix: str = "/jobs") -> dict[str, Any]:
    job = status(http, job_id, prefix, wait_s=30)
    assert job["status"] not in ("IN_QUEUE", "IN_PROGRESS"), job
    return job


def state_of(http: httpx.Client, job_id: str, prefix: str = "/jobs") -> str:
    return str(status(http, job_id, prefix)["status"])


def error_code(response: httpx.Response, status_code: int) -> str:
    assert response.status_code == status_code, response.text
    return str(response.json()["error"]["code"])


# -- submit and poll --------------------------------------------------------------------------------------------


def test_run_then_status_goes_to_completed_with_output_and_timings(http: httpx.Client) -> None:
    job_id = submit(http, "/double", input={"n": 21})
    job = finished(http, job_id)
    assert job["status"] == "COMPLETED"
    assert job["output"] == 42
    assert job["attempt"] == 1
    assert job["max_attempts"] == 3
    assert job["retried"] == 0
    assert job["endpoint"] == "POST /double"
    assert job["service"] == "jobs"
    assert job["version"] == 1
    assert job["delay_ms"] >= 0
    assert job["execution_ms"] >= 0
    assert job["error"] is None
    assert job["output_url"] is None


def test_runsync_answers_the_finished_job_or_its_id_to_poll(http: httpx.Client) -> None:
    done = http.post("/jobs/runsync", json={"endpoint": "/double", "input": {"n": 4}})
    assert done.status_code == 200
    assert done.json()["output"] == 8
    pending = http.post("/jobs/runsync", params={"wait_s": 0.1}, json={"endpoint": "/sleep", "input": {"seconds": 1}})
    assert pending.status_code == 202
    assert pending.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert finished(http, pending.json()["id"])["output"]["slept"] == 1


def test_the_endpoint_learns_its_job_id_and_attempt(http: httpx.Client) -> None:
    job_id = submit(http, "/sleep", input={"seconds": 0})
    assert finished(http, job_id)["output"] == {"slept": 0, "job": job_id, "attempt": 1}
    # Called synchronously, the same endpoint gets no job.
    assert http.post("/jobs/sleep", json={"seconds": 0}).json()["job"] is None


def test_a_path_with_one_method_needs_no_method(http: httpx.Client) -> None:
    assert finished(http, submit(http, "/users/7"))["output"] == {"user_id": 7}


def test_bad_job_requests_are_refused_at_submit(http: httpx.Client) -> None:
    assert error_code(http.post("/jobs/run", json={"endpoint": "/double", "input": {"n": "x"}}), 422) == (
        "validation_error"
    )
    assert error_code(http.post("/jobs/run", json={"endpoint": "/nope"}), 404) == "not_found"
    assert error_code(http.post("/jobs/run", json={"input": {}}), 400) == "invalid_request"  # several endpoints
    assert error_code(http.post("/jobs/run", json={"endpoint": "/double", "webhook": "x"}), 400) == "invalid_request"
    assert error_code(http.post("/jobs/run", content=b"[1]"), 400) == "invalid_request"
    bad_policy = {"endpoint": "/double", "input": {"n": 1}, "policy": {"timeout_s": -1}}
    assert error_code(http.post("/jobs/run", json=bad_policy), 400) == "invalid_request"
    assert error_code(http.get("/jobs/run"), 405) == "method_not_allowed"
    assert error_code(http.get("/jobs/status/job-unknown"), 404) == "job_not_found"


def test_jobs_need_the_services_credentials(served: tuple[str, Path]) -> None:
    url, _ = served
    with httpx.Client(base_url=url) as anonymous:
        assert error_code(anonymous.post("/jobs/run", json={"endpoint": "/double", "input": {"n": 1}}), 401) == (
            "unauthenticated"
        )


# -- failures, retries, timeouts ---------------------------------------------------------------------------------


def test_an_exception_fails_the_job_at_once_by_default(http: httpx.Client) -> None:
    job = finished(http, submit(http, "/fail", input={"message": "bad input"}))
    assert job["status"] == "FAILED"
    assert job["error"]["code"] == "function_error"
    assert "ValueError: bad input" in job["error"]["message"]
    assert job["attempt"] == 1
    assert job["retried"] == 0


def test_retry_on_exception_runs_it_again_until_it_succeeds(http: httpx.Client) -> None:
    job = finished(http, submit(http, "/flaky", input={"succeed_on": 3}))
    assert job["status"] == "COMPLETED"
    assert job["output"] == 3
    assert job["attempt"] == 3
    assert job["retried"] == 2
    assert job["error"] is None


def test_out_of_attempts_the_job_fails_with_the_last_error(http: httpx.Client) -> None:
    job = finished(http, submit(http, "/flaky", input={"succeed_on": 9}))
    assert job["status"] == "FAILED"
    assert job["attempt"] == 3
    assert "attempt 3 fails" in job["error"]["message"]


def test_retry_requeues_a_failed_job_and_refuses_others(http: httpx.Client) -> None:
    job_id = submit(http, "/fail")
    assert finished(http, job_id)["status"] == "FAILED"
    retried = http.post(f"/jobs/retry/{job_id}")
    assert retried.status_code == 200
    assert retried.json()["status"] in ("IN_QUEUE", "IN_PROGRESS", "FAILED")
    job = finished(http, job_id)
    assert job["status"] == "FAILED"
    assert job["retried"] == 1
    done = submit(http, "/double", input={"n": 1})
    finished(http, done)
    assert error_code(http.post(f"/jobs/retry/{done}"), 409) == "job_conflict"
    assert error_code(http.post(f"/jobs/cancel/{done}"), 409) == "job_conflict"


def test_an_attempt_past_its_timeout_is_cancelled_and_timed_out(http: httpx.Client) -> None:
    job_id = submit(http, "/sleep", input={"seconds": 20}, policy={"timeout_s": 0.3})
    job = finished(http, job_id)
    assert job["status"] == "TIMED_OUT"
    assert job["error"]["code"] == "invocation_timeout"
    assert http.post(f"/jobs/retry/{job_id}").status_code == 200  # TIMED_OUT may be retried
    assert http.post(f"/jobs/cancel/{job_id}").status_code in (200, 409)


# -- a busy service: queueing, cancelling, purging, backpressure ----------------------------------------------------


@pytest.fixture
def busy(http: httpx.Client) -> Iterator[str]:
    """`bounded` (1 replica, 1 call at a time) busy with a 2 s job; yields that job's id."""
    running = submit(http, "/sleep", "/bounded", input={"seconds": 2})
    wait_until(lambda: state_of(http, running, "/bounded") == "IN_PROGRESS", timeout_s=10, what="the job to start")
    yield running
    http.post(f"/bounded/cancel/{running}")
    http.post("/bounded/purge-queue")


def test_a_queued_job_says_why_it_waits_and_where_it_stands(http: httpx.Client, busy: str) -> None:
    waiting = submit(http, "/sleep", "/bounded", input={"seconds": 0})
    job = status(http, waiting, "/bounded")
    assert job["status"] == "IN_QUEUE"
    assert "busy" in job["reason"]
    position = http.get(f"/v1/queues/position/{waiting}").json()
    assert position["position"] == 1
    assert position["status"] == "IN_QUEUE"
    queue = http.get("/v1/queues/bounded").json()
    assert queue["queued"] == 1
    assert queue["running"] == 1
    assert queue["max_queued"] == 2
    assert queue["versions"] == [{"version": 1, "queued": 1, "running": 1}]
    health = http.get("/bounded/health").json()
    assert health["jobs"]["in_queue"] >= 1
    assert health["jobs"]["in_progress"] >= 1
    assert health["workers"] == {"idle": 0, "running": 1, "starting": 0}
    assert finished(http, waiting, "/bounded")["status"] == "COMPLETED"


def test_a_full_queue_answers_429_with_the_limit(http: httpx.Client, busy: str) -> None:
    submit(http, "/sleep", "/bounded", input={"seconds": 0})
    submit(http, "/sleep", "/bounded", input={"seconds": 0})
    refused = http.post("/bounded/run", json={"endpoint": "/sleep", "input": {"seconds": 0}})
    assert error_code(refused, 429) == "queue_full"
    assert "max_queued is 2" in refused.json()["error"]["message"]


def test_cancelling_a_queued_job_means_it_never_runs(http: httpx.Client, busy: str) -> None:
    waiting = submit(http, "/sleep", "/bounded", input={"seconds": 0})
    cancelled = http.post(f"/bounded/cancel/{waiting}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["error"]["code"] == "job_cancelled"
    assert finished(http, busy, "/bounded")["status"] == "COMPLETED"
    job = status(http, waiting, "/bounded")
    assert job["status"] == "CANCELLED"
    assert job["attempt"] == 0
    assert job["started_at"] is None


def test_cancelling_a_running_job_stops_it_and_frees_the_replica(http: httpx.Client, busy: str) -> None:
    started = time.monotonic()
    cancelled = http.post(f"/bounded/cancel/{busy}")
    assert cancelled.json()["status"] == "CANCELLED"
    # The replica took the next call at once: its slot is free (the sleeping thread finishes on its own).
    follow = submit(http, "/sleep", "/bounded", input={"seconds": 0})
    assert finished(http, follow, "/bounded")["status"] == "COMPLETED"
    assert time.monotonic() - started < 10


def test_purge_cancels_queued_jobs_and_lets_the_running_one_finish(http: httpx.Client, busy: str) -> None:
    waiting = [submit(http, "/sleep", "/bounded", input={"seconds": 0}) for _ in range(2)]
    assert http.post("/bounded/purge-queue").json() == {"removed": 2}
    assert [state_of(http, job_id, "/bounded") for job_id in waiting] == ["CANCELLED", "CANCELLED"]
    assert finished(http, busy, "/bounded")["status"] == "COMPLETED"


def test_a_job_not_started_within_its_ttl_times_out(http: httpx.Client, busy: str) -> None:
    waiting = submit(http, "/sleep", "/bounded", input={"seconds": 0}, policy={"ttl_s": 0.2})
    job = finished(http, waiting, "/bounded")
    assert job["status"] == "TIMED_OUT"
    assert "did not start within its ttl" in job["error"]["message"]


def test_finished_jobs_are_kept_for_their_retention_then_gone(http: httpx.Client) -> None:
    job_id = submit(http, "/sleep", "/bounded", input={"seconds": 0})
    assert finished(http, job_id, "/bounded")["status"] == "COMPLETED"
    wait_until(lambda: http.get(f"/bounded/status/{job_id}").status_code == 404, timeout_s=5, what="retention to pass")


def test_jobs_list_shows_them_newest_first(http: httpx.Client) -> None:
    job_id = submit(http, "/double", input={"n": 2})
    finished(http, job_id)
    listed = http.get("/v1/jobs", params={"service": "jobs", "limit": 5}).json()
    assert listed[0]["id"] == job_id
    assert "output" not in listed[0]
    failed = http.get("/v1/jobs", params={"service": "jobs", "status": "FAILED"}).json()
    assert all(job["status"] == "FAILED" for job in failed)


# -- 202 and poll on the synchronous path ------------------------------------------------------------------------


def test_a_call_with_a_poll_window_answers_at_once_when_quick(http: httpx.Client) -> None:
    response = http.post("/jobs/double", json={"n": 5}, headers={"fnserve-poll-seconds": "5"})
    assert response.status_code == 200
    assert response.json() == 10
    job_id = response.headers["fnserve-request-id"]
    assert error_code(http.get(f"/v1/status/{job_id}"), 404) == "job_not_found"  # delivered once


def test_an_empty_poll_window_means_the_default(http: httpx.Client) -> None:
    response = http.post("/jobs/double", json={"n": 6}, headers={"fnserve-poll-seconds": ""})
    assert response.status_code == 200
    assert response.json() == 12
    assert response.headers["fnserve-request-id"].startswith("job-")


def test_a_slow_call_answers_202_then_the_result_once(http: httpx.Client) -> None:
    response = http.post("/jobs/sleep", json={"seconds": 1}, headers={"fnserve-poll-seconds": "0"})
    assert response.status_code == 202
    assert response.content == b""
    job_id = response.headers["fnserve-request-id"]
    assert response.headers["location"] == f"/v1/status/{job_id}"
    early = http.get(f"/v1/status/{job_id}", headers={"fnserve-poll-seconds": "0"})
    assert early.status_code == 202
    assert early.headers["fnserve-request-id"] == job_id
    done = http.get(f"/v1/status/{job_id}", headers={"fnserve-poll-seconds": "30"})
    assert done.status_code == 200
    assert done.json()["slept"] == 1
    assert error_code(http.get(f"/v1/status/{job_id}"), 404) == "job_not_found"


def test_a_polled_call_that_fails_answers_its_error(http: httpx.Client) -> None:
    response = http.post("/jobs/fail", json={"message": "nope"}, headers={"fnserve-poll-seconds": "10"})
    assert error_code(response, 500) == "function_error"


@pytest.mark.parametrize("value", ["abc", "301", "-1", "nan"])
def test_a_bad_poll_window_is_a_400(http: httpx.Client, value: str) -> None:
    response = http.post("/jobs/double", json={"n": 5}, headers={"fnserve-poll-seconds": value})
    assert error_code(response, 400) == "invalid_request"
    assert "fnserve-poll-seconds" in response.json()["error"]["message"]


def test_v1_status_answers_the_services_token_but_not_another(served: tuple[str, Path], http: httpx.Client) -> None:
    url, _ = served
    token = http.post("/v1/functions/jobs/tokens", json={"label": "poller"}).json()["token"]
    other = http.post("/v1/functions/bounded/tokens", json={"label": "other"}).json()["token"]
    response = http.post("/jobs/sleep", json={"seconds": 0.3}, headers={"fnserve-poll-seconds": "0"})
    job_id = response.headers["fnserve-request-id"]
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert error_code(anonymous.get(f"/v1/status/{job_id}"), 401) == "unauthenticated"
        wrong = anonymous.get(f"/v1/status/{job_id}", headers={"authorization": f"Bearer {other}"})
        assert error_code(wrong, 404) == "job_not_found"
        right = anonymous.get(
            f"/v1/status/{job_id}", headers={"authorization": f"Bearer {token}", "fnserve-poll-seconds": "30"}
        )
        assert right.status_code == 200
        assert right.json()["slept"] == 0.3


# -- a replica killed mid-job ---------------------------------------------------------------------------------------


def test_a_job_on_a_replica_killed_mid_run_completes_on_another(http: httpx.Client) -> None:
    job_id = submit(http, "/sleep", input={"seconds": 1.5})
    wait_until(lambda: state_of(http, job_id) == "IN_PROGRESS", timeout_s=10, what="the job to start")
    replicas = http.get("/v1/services/jobs").json()["replicas"]
    busy = [r for r in replicas if r["in_flight"] > 0]
    assert len(busy) == 1, replicas
    os.kill(busy[0]["pid"], signal.SIGKILL)
    job = finished(http, job_id)
    assert job["status"] == "COMPLETED", job
    assert job["attempt"] == 2
    assert job["retried"] == 1
    assert job["output"]["attempt"] == 2
    wait_until(lambda: ready_replicas(http, "jobs") == 2, timeout_s=60, what="the replacement replica")


# -- assets and large results ---------------------------------------------------------------------------------------


def test_a_result_over_the_inline_limit_is_stored_and_linked(http: httpx.Client) -> None:
    size = 6 * 1024 * 1024
    job = finished(http, submit(http, "/big", input={"size": size}))
    assert job["status"] == "COMPLETED"
    assert job["output"] is None
    assert job["output_url"].startswith("/v1/assets/")
    assert http.get(job["output_url"]).json() == "x" * size
    direct = http.post("/jobs/big", json={"size": size})
    assert direct.status_code == 302
    assert http.get(direct.headers["location"]).json() == "x" * size


def test_a_job_and_a_call_read_uploaded_assets_as_files(http: httpx.Client) -> None:
    data = os.urandom(20 * 1024 * 1024)
    asset = http.post("/v1/assets", json={"content_type": "application/octet-stream"}).json()
    assert http.put(asset["upload_url"], content=data).status_code == 200
    header = {"fnserve-input-assets": asset["asset_id"]}
    response = http.post("/jobs/run", json={"endpoint": "/asset-sizes"}, headers=header)
    assert finished(http, response.json()["id"])["output"] == {asset["asset_id"]: len(data)}
    assert http.post("/jobs/asset-sizes", json={}, headers=header).json() == {asset["asset_id"]: len(data)}
    missing = http.post(
        "/jobs/run", json={"endpoint": "/asset-sizes"}, headers={"fnserve-input-assets": "ast-0123456789abcdef"}
    )
    assert error_code(missing, 404) == "asset_not_found"
    assert "ast-0123456789abcdef" in missing.json()["error"]["message"]
