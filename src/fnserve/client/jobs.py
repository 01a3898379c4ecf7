"""`Job` and `AsyncJob`: a handle on one queued job (docs/JOBS.md), made by `deployment.hello.submit(...)`.

The handle keeps the service's route prefix and the job id; every method asks the server again. Waiting
is done with long polls (`/status/{id}?wait_s=`, at most 60 s a request), never a busy loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fnserve.client.api import MAX_STATUS_WAIT_S, AsyncClient, Client
from fnserve.errors import FnserveError, error_from_code

FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
# The error a finished job stands for when the server gave it none (it always should).
_CODE_BY_STATUS = {"FAILED": "function_error", "TIMED_OUT": "invocation_timeout", "CANCELLED": "job_cancelled"}
# When a poll comes back early with the job unfinished, wait a little before the next: this many seconds,
# doubling up to the last, so an early answer never turns the wait into a busy loop.
_EARLY_ANSWER_BACKOFF_S = (0.05, 1.0)


class _Waiting:
    """The deadline of one wait, and the length of the next long poll."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.backoff_s = _EARLY_ANSWER_BACKOFF_S[0]

    def next_poll_s(self) -> float:
        """Seconds the next poll may wait on the server (0: the time is up, ask once more without waiting)."""
        if self.deadline is None:
            return MAX_STATUS_WAIT_S
        return round(max(0.0, min(MAX_STATUS_WAIT_S, self.deadline - time.monotonic())), 3)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def pause_after(self, asked_s: float, took_s: float) -> float:
        """How long to sleep after a poll that asked to wait `asked_s` and came back unfinished after `took_s`."""
        if took_s >= asked_s * 0.9:
            self.backoff_s = _EARLY_ANSWER_BACKOFF_S[0]
            return 0.0
        pause = self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, _EARLY_ANSWER_BACKOFF_S[1])
        if self.deadline is not None:
            pause = min(pause, max(0.0, self.deadline - time.monotonic()))
        return pause


def job_error(job: dict[str, Any]) -> FnserveError:
    """The `fnserve.errors` class a FAILED, CANCELLED or TIMED_OUT job carries, e.g. FunctionError."""
    error = job.get("error") or {}
    code = error.get("code") or _CODE_BY_STATUS.get(job["status"], "internal_error")
    message = error.get("message") or f"Job {job['id']} is {job['status']}"
    details = {**(error.get("details") or {}), "job_id": job["id"], "status": job["status"]}
    return error_from_code(code, message, details)


def _timeout_error(job: dict[str, Any], timeout_s: float | None) -> TimeoutError:
    reason = f" ({job['reason']})" if job.get("reason") else ""
    return TimeoutError(
        f"Job {job['id']} is still {job['status']}{reason} after {timeout_s:g} s; wait longer with "
        f"`.result(timeout_s=...)`, or see it with `fnserve jobs get {job.get('service', 'SERVICE')} {job['id']}`"
    )


class Job:
    """A queued job of one service.

    Example:
        >>> job = deployment.hello.submit(message="hi")
        >>> job.status()
        'IN_QUEUE'
        >>> job.result(timeout_s=30)
        'hi My favorite number is 42'
    """

    def __init__(self, client: Client, route_prefix: str, job_id: str, info: dict[str, Any] | None = None) -> None:
        self._client = client
        self._route_prefix = route_prefix
        self.id = job_id
        self._info: dict[str, Any] = info or {"id": job_id, "status": "UNKNOWN"}

    def __repr__(self) -> str:
        return f"<Job {self.id} {self._info['status']}>"

    def info(self) -> dict[str, Any]:
        """The whole job as the server knows it now: status, attempts, timings, output or error."""
        self._info = self._client.job(self._route_prefix, self.id)
        return self._info

    def status(self) -> str:
        """`IN_QUEUE`, `IN_PROGRESS`, `COMPLETED`, `FAILED`, `CANCELLED` or `TIMED_OUT`."""
        return str(self.info()["status"])

    def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until the job finishes or `timeout_s` passes (None: no limit); returns the job either way."""
        waiting = _Waiting(timeout_s)
        while self._info["status"] not in FINISHED:
            asked_s = waiting.next_poll_s()
            started = time.monotonic()
            self._info = self._client.job(self._route_prefix, self.id, wait_s=asked_s)
            if self._info["status"] in FINISHED or waiting.expired():
                break
            time.sleep(waiting.pause_after(asked_s, time.monotonic() - started))
        return self._info

    def result(self, timeout_s: float | None = None) -> Any:
        """The job's output, once it finished (downloaded when it was over the inline limit).

        Args:
            timeout_s: how long to wait for it; None waits as long as the job takes.

        Raises:
            FnserveError: the job's error, as its class (FunctionError, InvocationTimeout, ReplicaCrashed, ...)
                when it is FAILED, TIMED_OUT or CANCELLED.
            TimeoutError: it did not finish within `timeout_s`.
        """
        job = self.wait(timeout_s)
        if job["status"] == "COMPLETED":
            return self._client.job_output(job)
        if job["status"] in FINISHED:
            raise job_error(job)
        raise _timeout_error(job, timeout_s)

    def cancel(self) -> dict[str, Any]:
        """Cancel it (queued, or running: the attempt is stopped); a finished job raises JobConflict."""
        self._info = self._client.cancel_job(self._route_prefix, self.id)
        return self._info

    def retry(self) -> dict[str, Any]:
        """Queue a FAILED or TIMED_OUT job again; other states raise JobConflict."""
        self._info = self._client.retry_job(self._route_prefix, self.id)
        return self._info


class AsyncJob:
    """The asynchronous twin of `Job`: `await job.result(timeout_s=30)`."""

    def __init__(self, client: AsyncClient, route_prefix: str, job_id: str, info: dict[str, Any] | None = None) -> None:
        self._client = client
        self._route_prefix = route_prefix
        self.id = job_id
        self._info: dict[str, Any] = info or {"id": job_id, "status": "UNKNOWN"}

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id} {self._info['status']}>"

    async def info(self) -> dict[str, Any]:
        self._info = await self._client.job(self._route_prefix, self.id)
        return self._info

    async def status(self) -> str:
        return str((await self.info())["status"])

    async def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        waiting = _Waiting(timeout_s)
        while self._info["status"] not in FINISHED:
            asked_s = waiting.next_poll_s()
            started = time.monotonic()
            self._info = await self._client.job(self._route_prefix, self.id, wait_s=asked_s)
            if self._info["status"] in FINISHED or waiting.expired():
                break
            await asyncio.sleep(waiting.pause_after(asked_s, time.monotonic() - started))
        return self._info

    async def result(self, timeout_s: float | None = None) -> Any:
        job = await self.wait(timeout_s)
        if job["status"] == "COMPLETED":
            return await self._client.job_output(job)
        if job["status"] in FINISHED:
            raise job_error(job)
        raise _timeout_error(job, timeout_s)

    async def cancel(self) -> dict[str, Any]:
        self._info = await self._client.cancel_job(self._route_prefix, self.id)
        return self._info

    async def retry(self) -> dict[str, Any]:
        self._info = await self._client.retry_job(self._route_prefix, self.id)
        return self._info
