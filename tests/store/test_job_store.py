"""`JobStore` on SQLite and on a real PostgreSQL: batched writes, reads, counts, retention, and taking over the
jobs of a server whose heartbeat stopped. Plus a whole server running jobs on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from _postgres import fresh_database
from jobs import jobs

import fnserve as fs
from fnserve.settings import Settings
from fnserve.spec import RetryPolicy
from fnserve.store.jobs import Job, JobPolicy, JobState, JobStore
from fnserve.testing import run_server

POLICY = JobPolicy(RetryPolicy(max_attempts=2), timeout_s=60, ttl_s=3600, retention_s=1800)


@pytest.fixture(params=["sqlite", "postgresql"])
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    from fnserve.store import StateStore

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fnserve.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"))
    state = StateStore(url)
    try:
        yield JobStore(state.engine)
    finally:
        state.close()


def new_job(job_id: str, *, owner_id: str | None = "srv-a", state: JobState = JobState.in_queue) -> Job:
    now = time.time()
    return Job(
        job_id=job_id,
        function_id="fn-1",
        version_id="ver-1",
        pinned=False,
        route="POST /double",
        body=b'{"n": 2}',
        path_params={},
        query={},
        assets=["ast-0123456789abcdef"],
        policy=POLICY,
        state=state,
        created_at=now,
        queued_at=now,
        expires_at=now + 3600,
        owner=owner_id,
    )


def test_jobs_round_trip_through_batched_writes(job_store: JobStore) -> None:
    first, second = new_job("job-1"), new_job("job-2")
    job_store.apply([first, second], [])
    first.state, first.attempt, first.output = JobState.completed, 1, b"4"
    first.finished_at = first.retain_until = time.time()
    second.state, second.error = JobState.failed, {"code": "function_error", "message": "ValueError: x"}
    job_store.apply([], [first, second])
    stored = job_store.get("job-1")
    assert stored is not None
    assert (stored.state, stored.attempt, stored.output, stored.body) == (JobState.completed, 1, b"4", b'{"n": 2}')
    assert stored.assets == ["ast-0123456789abcdef"]
    assert stored.policy == POLICY
    assert job_store.get("job-2").error == {"code": "function_error", "message": "ValueError: x"}  # type: ignore[union-attr]
    assert [job.job_id for job in job_store.find(function_id="fn-1", state=JobState.failed)] == ["job-2"]
    assert job_store.counts("fn-1") == ({"COMPLETED": 1, "FAILED": 1}, 0)
    assert job_store.delete_expired(time.time() + 1) == [("job-1", None)]
    assert job_store.get("job-1") is None
    job_store.apply([], [], ["job-2"])
    assert job_store.get("job-2") is None


def test_a_dead_servers_unfinished_jobs_are_taken_over(job_store: JobStore) -> None:
    job_store.heartbeat("srv-a", time.time() - 120)  # stopped two minutes ago
    job_store.heartbeat("srv-b", time.time())  # alive
    running = new_job("job-run", state=JobState.in_progress)
    done = new_job("job-done", state=JobState.completed)
    alive = new_job("job-alive", owner_id="srv-b")
    job_store.apply([new_job("job-queued"), running, done, alive], [])
    claimed = job_store.claim_orphans("srv-c", stale_before=time.time() - 30, own=False)
    assert sorted(job.job_id for job in claimed) == ["job-queued", "job-run"]
    assert {job.owner for job in claimed} == {"srv-c"}
    assert job_store.get("job-alive").owner == "srv-b"  # type: ignore[union-attr]
    assert job_store.claim_orphans("srv-d", stale_before=time.time() - 30, own=False) == []


def test_a_restarted_server_claims_its_own_jobs_at_once(job_store: JobStore) -> None:
    job_store.heartbeat("srv-a", time.time())  # its heartbeat is fresh: it was killed a moment ago
    job_store.apply([new_job("job-1"), new_job("job-2", state=JobState.in_progress)], [])
    assert job_store.claim_orphans("srv-b", stale_before=time.time() - 30, own=False) == []
    mine = job_store.claim_orphans("srv-a", stale_before=time.time() - 30, own=True)
    assert sorted(job.job_id for job in mine) == ["job-1", "job-2"]


def test_a_server_on_postgresql_runs_jobs_with_retries(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(db_url=fresh_database(postgres_url))
    with run_server(home=tmp_path / "home", settings=settings, graceful_shutdown_s=2) as url:
        with fs.deploy(jobs, url=url)(log_dir=str(tmp_path)) as deployment:
            deployment.wait(timeout_s=60)
        with httpx.Client(base_url=url, headers=owner(url), timeout=60) as http:
            ids = [
                http.post("/jobs/run", json={"endpoint": "/flaky", "input": {"succeed_on": 2}}).json()["id"]
                for _ in range(5)
            ]
            results = [http.get(f"/jobs/status/{job_id}", params={"wait_s": 30}).json() for job_id in ids]
            assert [(job["status"], job["output"], job["attempt"]) for job in results] == [("COMPLETED", 2, 2)] * 5
            assert http.get("/jobs/health").json()["jobs"]["retried"] == 5
