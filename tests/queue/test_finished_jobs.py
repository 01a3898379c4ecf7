"""Finished jobs live in the store, not in the server's memory (docs/JOBS.md): once a job's outcome is saved it leaves
memory, and every read after that (status, the result, the listing) comes from the store. 44k finished no-op jobs once
held 225 MB for a minute; `fnserve_jobs_held` on `/metrics` counts what memory holds."""

from __future__ import annotations

import re

import httpx
from _auth import owner
from jobs import jobs

import fnserve as fs
from fnserve.testing import wait_until


def jobs_held(http: httpx.Client) -> int:
    found = re.search(r"^fnserve_jobs_held (\d+)$", http.get("/metrics").text, re.MULTILINE)
    assert found is not None, "no fnserve_jobs_held gauge"
    return int(found.group(1))


def test_finished_jobs_leave_memory_and_are_answered_from_the_store(server_url: str) -> None:
    """1. Submit 60 jobs (some fail) and wait until all have finished.
    2. The server holds none of them in memory.
    3. Each is still answered in full: status, output or error, and listed; a failed one can be retried and runs."""
    with fs.deploy(jobs, url=server_url)() as deployment:
        deployment.wait(timeout_s=60)
    with httpx.Client(base_url=server_url, headers=owner(server_url), timeout=30) as http:
        ids = []
        for n in range(60):
            body = {"endpoint": "/double", "input": {"n": n}} if n % 10 else {"endpoint": "/fail", "input": {}}
            submitted = http.post("/jobs/run", json=body)
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["id"])

        def finished() -> bool:
            health = http.get("/jobs/health").json()["jobs"]
            return bool(health["completed"] + health["failed"] == 60)

        wait_until(finished, timeout_s=60, what="60 jobs to finish")
        assert jobs_held(http) == 0
        for n, job_id in enumerate(ids):
            status = http.get(f"/jobs/status/{job_id}").json()
            if n % 10:
                assert (status["status"], status["output"]) == ("COMPLETED", 2 * n), status
            else:
                assert (status["status"], status["error"]["code"]) == ("FAILED", "function_error"), status
        assert {job["id"] for job in http.get("/v1/jobs", params={"service": "jobs"}).json()} == set(ids)
        retried = http.post(f"/jobs/retry/{ids[0]}")
        assert retried.json()["status"] == "IN_QUEUE", retried.text
        again = wait_until(
            lambda: (status := http.get(f"/jobs/status/{ids[0]}").json())["status"] == "FAILED" and status,
            timeout_s=30,
        )
        assert again["retried"] == 1
        wait_until(lambda: jobs_held(http) == 0, timeout_s=10, what="the retried job to leave memory")
