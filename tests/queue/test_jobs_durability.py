"""Jobs survive the server: `fnserve server` killed with SIGKILL while jobs run and wait, then started again on the
same home. Every job ends COMPLETED once, and no job starts more often than its policy allows."""

from __future__ import annotations

import collections
import signal
from pathlib import Path
from typing import Any

import httpx
from _server_process import server_process
from jobs import jobs

import fnserve as fs
from fnserve.testing import wait_until


def runs(log_dir: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """How often each job started and finished, from the lines `/record` writes."""
    starts: collections.Counter[str] = collections.Counter()
    dones: collections.Counter[str] = collections.Counter()
    path = log_dir / "runs.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        event, job_id, _attempt = line.split()
        (starts if event == "start" else dones)[job_id] += 1
    return starts, dones


def job(http: httpx.Client, job_id: str, wait_s: float = 0) -> dict[str, Any]:
    response = http.get(f"/jobs/status/{job_id}", params={"wait_s": wait_s})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_server_killed_mid_jobs_resumes_them_after_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    with server_process(home) as (process, url, key):
        with fs.deploy(jobs, url=url, api_key=key)(log_dir=str(log_dir)) as deployment:
            deployment.wait(timeout_s=60)
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
            spec = {"min_instances": 1, "max_instances": 1, "max_request_concurrency": 2}
            assert http.put("/v1/deployments/functions/jobs/versions/1", json=spec).status_code == 200
            submitted = [
                http.post("/jobs/run", json={"endpoint": "/record", "input": {"seconds": 2}}).json()["id"]
                for _ in range(4)
            ]
            wait_until(lambda: sum(runs(log_dir)[0].values()) == 2, timeout_s=30, what="two jobs to start")
            assert sorted(job(http, job_id)["status"] for job_id in submitted) == [
                "IN_PROGRESS",
                "IN_PROGRESS",
                "IN_QUEUE",
                "IN_QUEUE",
            ]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    interrupted = set(runs(log_dir)[0])
    assert len(interrupted) == 2
    assert not runs(log_dir)[1]  # killed before any finished

    with (
        server_process(home) as (_process, url, key),
        httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60) as http,
    ):
        finished = {job_id: job(http, job_id, wait_s=60) for job_id in submitted}
    assert {job_id: result["status"] for job_id, result in finished.items()} == dict.fromkeys(submitted, "COMPLETED")
    starts, dones = runs(log_dir)
    assert dones == dict.fromkeys(submitted, 1)  # each completed exactly once
    for job_id, result in finished.items():
        expected_attempt = 2 if job_id in interrupted else 1  # the interrupted attempt counts
        assert result["attempt"] == expected_attempt, result
        assert result["output"] == expected_attempt
        assert starts[job_id] == expected_attempt <= result["max_attempts"]
