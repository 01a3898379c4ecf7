"""The `/v1` side of jobs (docs/JOBS.md): polling a request by id, queue depths and positions, and listing.

`/v1/status/{id}` and `/v1/queues/position/{id}` answer the job's own service token as well as the
owner key (the server lets them past its owner check); the others are the owner's.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from fnserve.auth import Authenticator
from fnserve.controlplane.schemas import ERROR_RESPONSES
from fnserve.errors import JobNotFound
from fnserve.gateway.jobs import (
    DEFAULT_POLL_S,
    MAX_POLL_S,
    POLL_HEADER,
    job_result,
    parse_seconds,
    pending_headers,
)
from fnserve.queue.dispatcher import Dispatcher
from fnserve.store import StateStore
from fnserve.store.jobs import Job, JobState

JobStatus = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]


def build_jobs_router(dispatcher: Dispatcher, authenticator: Authenticator, store: StateStore) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)

    async def job_for_caller(request: Request, request_id: str) -> Job:
        """The job, if the caller may see it: the owner, or a token of the job's service (others get a 404)."""
        grant = authenticator.caller(request.headers.raw, action="reading a job")
        job = await dispatcher.find(request_id)
        if grant is not None and grant.function_id != job.function_id:
            raise JobNotFound(f"no job {request_id[:60]!r} for this token's service {grant.function_name!r}")
        return job

    @router.get(
        "/status/{request_id}",
        tags=["jobs"],
        status_code=200,
        responses={
            202: {"description": "still running; poll again (headers fnserve-request-id, location)"},
            302: {"description": "a result over the inline limit: its download URL is in location"},
        },
    )
    async def poll_result(request: Request, request_id: str) -> Response:
        """The result of a call made with `fnserve-poll-seconds`, once: 202 while it runs (waiting up to this
        request's own `fnserve-poll-seconds`, default 5), then 200 with the result, a 302 to a stored result,
        or the job's error. A delivered result answers 404 after."""
        job = await job_for_caller(request, request_id)
        if job.delivered:
            raise JobNotFound(f"the result of {job.job_id} was already delivered; a result is answered once")
        raw = request.headers.get(POLL_HEADER.decode())
        poll_s = parse_seconds(raw, default=DEFAULT_POLL_S, limit=MAX_POLL_S, name="fnserve-poll-seconds")
        if not await dispatcher.wait(job, poll_s):
            return Response(status_code=202, headers={k.decode(): v.decode() for k, v in pending_headers(job)})
        job = await dispatcher.find(job.job_id)
        status, body, extra = job_result(job)
        await dispatcher.mark_delivered(job)
        headers = {k.decode(): v.decode() for k, v in extra}
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    @router.get("/queues/position/{request_id}", tags=["jobs"])
    async def queue_position(request: Request, request_id: str) -> dict[str, Any]:
        """Where a queued job stands: `position` 1 starts next; null once it started."""
        job = await job_for_caller(request, request_id)
        return {
            "id": job.job_id,
            "status": job.state.value,
            "position": dispatcher.position(job),
            "reason": dispatcher.reason(job),
        }

    @router.get("/queues/{name_or_id}", tags=["jobs"])
    async def queue_depth(name_or_id: str) -> dict[str, Any]:
        """A service's queued and running jobs, by version, and its `max_queued`."""
        function = await asyncio.to_thread(store.get_function, name_or_id)
        versions = await asyncio.to_thread(store.list_versions, function.function_id)
        live = dispatcher.supervisor.live_of(function.function_id)
        newest = max(live, key=lambda each: each.version.number).spec if live else None
        spec = newest or (versions[-1].spec if versions else None)
        return {
            "service": function.name,
            **dispatcher.queue_depth(function.function_id),
            "max_queued": spec.max_queued if spec is not None else None,
        }

    @router.get("/jobs", tags=["jobs"])
    async def list_jobs(
        service: str | None = None,
        status: JobStatus | None = None,
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        """Jobs, newest first, without their outputs (read one with its service's `/status/{id}`)."""
        function_id = None
        if service is not None:
            function_id = (await asyncio.to_thread(store.get_function, service)).function_id
        stored = await asyncio.to_thread(
            dispatcher.store.find,
            function_id=function_id,
            state=JobState(status) if status is not None else None,
            limit=limit,
        )
        # Jobs this server holds are fresher in memory than in the store (a save may be on its way).
        return [dispatcher.describe(dispatcher.jobs.get(job.job_id, job), with_output=False) for job in stored]

    return router
