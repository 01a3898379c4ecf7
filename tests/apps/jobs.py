"""A service for the job queue's tests: quick, slow, failing, flaky, crashing and large-result endpoints.

`/record` appends "job_id attempt" to a file in `log_dir` when it starts and when it finishes, so tests can count
how often each job really ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import fnserve as fs


@fs.service(retry=fs.RetryPolicy(max_attempts=3, backoff_s=0.05), replicas=1)
def jobs(log_dir: str = "") -> dict[str, str]:
    return {"log_dir": log_dir}


@jobs.endpoint("/double")
def double(n: int) -> int:
    return 2 * n


@jobs.endpoint("/sleep")
def sleep(seconds: float, _job: fs.JobContext | None = None) -> dict[str, object]:
    time.sleep(seconds)
    return {
        "slept": seconds,
        "job": None if _job is None else _job.id,
        "attempt": None if _job is None else _job.attempt,
    }


@jobs.endpoint("/record")
def record(seconds: float = 0.0, log_dir: str = "", _job: fs.JobContext | None = None) -> int:
    assert _job is not None, "/record runs as a job"
    log = Path(log_dir) / "runs.log"
    with log.open("a") as file:
        file.write(f"start {_job.id} {_job.attempt}\n")
    time.sleep(seconds)
    with log.open("a") as file:
        file.write(f"done {_job.id} {_job.attempt}\n")
    return _job.attempt


@jobs.endpoint("/fail")
def fail(message: str = "no luck") -> None:
    raise ValueError(message)


@jobs.endpoint("/flaky", retry=fs.RetryPolicy(max_attempts=3, backoff_s=0.01, retry_on_exception=True))
def flaky(succeed_on: int = 3, _job: fs.JobContext | None = None) -> int:
    assert _job is not None
    if _job.attempt < succeed_on:
        raise RuntimeError(f"attempt {_job.attempt} fails")
    return _job.attempt


@jobs.endpoint("/pid")
def pid() -> int:
    return os.getpid()


@jobs.endpoint("/big")
def big(size: int) -> str:
    return "x" * size


@jobs.endpoint("/users/{user_id}", method="GET")
def get_user(user_id: int) -> dict[str, int]:
    return {"user_id": user_id}


@fs.service(max_queued=2, result_retention=4, job_ttl="1h")
def bounded() -> dict[str, str]:
    """A service with a tiny queue and a four-second retention, for backpressure and retention tests."""
    return {}


@bounded.endpoint("/sleep")
def bounded_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@jobs.endpoint("/asset-sizes")
def asset_sizes(_assets: dict[str, Path]) -> dict[str, int]:
    return {asset_id: path.stat().st_size for asset_id, path in _assets.items()}
