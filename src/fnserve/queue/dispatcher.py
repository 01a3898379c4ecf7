"""The dispatcher: runs queued jobs on replicas, retries and times them out, and answers for them.

Jobs are held in memory only while they are unfinished, and every change that matters is saved through
the `BatchWriter` before anyone is told: a job is in the store before `/run` answers, and each attempt is
recorded before it starts, so a job never runs more often than its policy allows, even across a server
crash. A finished job leaves memory once its outcome is saved, and is read from the store after that (at
44k finished no-op jobs, keeping them for a minute held 225 MB); one whose outcome could not be saved (a
full disk) stays until a later save succeeds. One queue per deployed version feeds its replicas,
sharing their `max_request_concurrency` slots with synchronous calls. Queued jobs whose version
goes away move to the function's current version (or wait, parked, for one to be deployed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from fnserve.controlplane.disabling import is_disabled
from fnserve.controlplane.supervisor import LiveDeployment, ReplicaState, Supervisor
from fnserve.disk import OutageLog
from fnserve.errors import (
    FnserveError,
    FunctionError,
    InternalError,
    InvocationTimeout,
    JobCancelled,
    JobConflict,
    JobNotFound,
    QueueFull,
    ReplicaCrashed,
    StorageUnavailable,
)
from fnserve.gateway.connection import ReplicaConnection
from fnserve.gateway.router import EndpointRoute
from fnserve.home import create_private
from fnserve.queue.command_jobs import command_route, run_command_job
from fnserve.queue.writer import BatchWriter
from fnserve.responses import Response
from fnserve.store.functions import new_id
from fnserve.store.jobs import Job, JobPolicy, JobState, JobStore

logger = logging.getLogger("fnserve.queue")

SERVER_ID_FILE = "server.id"
HEARTBEAT_INTERVAL_S = 5.0
# A server whose heartbeat is this old is taken for dead, and its jobs are taken over.
STALE_AFTER_S = 30.0
# How often queued jobs are checked against their TTL, and parked ones against newly deployed versions.
SWEEP_INTERVAL_S = 0.5
# How often finished jobs past retention are deleted.
RETENTION_SWEEP_S = 10.0


class Assets(Protocol):
    """What the dispatcher needs of the asset store: input files for a job, and a home for oversized results."""

    def resolve_inputs(self, ids: list[str], function_id: str) -> dict[str, Path]: ...

    def store_result(
        self, function_id: str, data: bytes, *, expires_at: float, content_type: str = "application/json"
    ) -> Any: ...

    def delete_expired(self, now: float) -> int: ...


def server_id(home: Path) -> str:
    """This server's identity for the jobs it holds: kept in the home folder, so a restart reclaims them."""
    path = home / SERVER_ID_FILE
    with contextlib.suppress(FileNotFoundError):
        identity = path.read_text().strip()
        if identity:
            return identity
    identity = new_id("srv")
    create_private(path, (identity + "\n").encode(), replace=True)  # whole or not at all; the home lock is ours
    return identity


class VersionQueue:
    """The queued jobs of one deployed version, oldest first, and the task that feeds them to its replicas."""

    def __init__(self, live: LiveDeployment) -> None:
        self.live = live
        self.pending: collections.deque[Job] = collections.deque()
        self.task: asyncio.Task[None] | None = None

    def next(self) -> Job | None:
        job = self.peek()
        if job is not None:
            self.pending.popleft()
        return job

    def peek(self) -> Job | None:
        """The oldest job still queued (those cancelled or timed out while queued are dropped here)."""
        while self.pending:
            job = self.pending[0]
            if job.state is JobState.in_queue:
                return job
            self.pending.popleft()
        return None

    def position(self, job: Job) -> int | None:
        ahead = 0
        for queued in self.pending:
            if queued is job:
                return ahead + 1
            if queued.state is JobState.in_queue:
                ahead += 1
        return None


class Dispatcher:
    def __init__(
        self,
        supervisor: Supervisor,
        store: JobStore,
        *,
        assets: Assets,
        server: str,
        inline_result_bytes: int,
    ) -> None:
        self.supervisor = supervisor
        self.store = store
        self.assets = assets
        self.server = server
        self.inline_result_bytes = inline_result_bytes
        self.writer = BatchWriter(store)
        self.jobs: dict[str, Job] = {}  # unfinished, and finished ones whose outcome is not saved yet
        self.queues: dict[str, VersionQueue] = {}  # by version id
        self.parked: dict[str, collections.deque[Job]] = {}  # by function id: no version to run on yet
        self.backing_off: set[Job] = set()  # queued again after a failed attempt, waiting out the backoff
        self.running: set[Job] = set()
        self.unsaved: dict[str, Job] = {}  # finished, but saving the outcome failed (a full disk): saved again later
        self.save_outage = OutageLog(logger, "Saving finished jobs")
        self.loop_outages = {name: OutageLog(logger, what) for name, what in _LOOPS.items()}
        self.queued_count: collections.Counter[str] = collections.Counter()  # by function id
        self.paused = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back the jobs this server held before it stopped (and any a dead server left), then run."""
        self.writer.start()
        await self._claim(own=True)
        self._tasks = [
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._expire_retained()),
        ]

    def pause(self) -> None:
        """Start no more jobs (the server is stopping); running ones go on while their replicas drain."""
        self.paused = True
        for queue in self.queues.values():
            queue.live.wake_all()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        running = [job.task for job in self.running if job.task is not None]
        if running:  # replicas have stopped by now: these finish at once, saving their outcome
            await asyncio.wait(running, timeout=5)
        for task in [*self._tasks, *running]:
            task.cancel()
        await asyncio.gather(*self._tasks, *running, return_exceptions=True)
        await self.writer.close()

    # -- submitting --------------------------------------------------------------------------------------------

    def policy_for(self, live: LiveDeployment, route: EndpointRoute | None, overrides: dict[str, float]) -> JobPolicy:
        """`route` None: a command service's job (queue/command_jobs.py), which has the service's policy."""
        spec = live.spec
        return JobPolicy(
            retry=spec.retry if route is None else spec.retry_policy(route.spec),
            timeout_s=overrides.get("timeout_s", spec.job_timeout_s),
            ttl_s=overrides.get("ttl_s", spec.job_ttl_s),
            retention_s=spec.result_retention_s,
        )

    async def submit(
        self,
        live: LiveDeployment,
        route: EndpointRoute | None,
        body: bytes,
        path_params: dict[str, str],
        query: dict[str, Any],
        *,
        assets: list[str],
        pinned: bool,
        policy: JobPolicy,
    ) -> Job:
        """Queue a job; returns once it is in the store. QueueFull when the service holds `max_queued` jobs. `route`
        None: a command service's job, for its inference URL."""
        function_id = live.function.function_id
        if self.queued_count[function_id] >= live.spec.max_queued:
            raise QueueFull(
                f"the queue of {live.name} is full: {self.queued_count[function_id]} jobs waiting, and max_queued is "
                f"{live.spec.max_queued}; retry later, add replicas, or raise max_queued"
            )
        now = time.time()
        job = Job(
            job_id=new_id("job"),
            function_id=function_id,
            version_id=live.version.version_id,
            pinned=pinned,
            route=route.spec.key if route is not None else command_route(live.spec),
            body=body,
            path_params=path_params,
            query=query,
            assets=assets,
            policy=policy,
            state=JobState.in_queue,
            created_at=now,
            queued_at=now,
            expires_at=now + policy.ttl_s,
            owner=self.server,
            service=live.name,
            version=live.version.number,
        )
        self.queued_count[function_id] += 1
        try:
            await self.writer.insert(job)
        except StorageUnavailable:
            self.queued_count[function_id] -= 1
            raise
        except Exception:
            self.queued_count[function_id] -= 1
            raise InternalError("the job could not be saved in the state store; see the server log") from None
        self.jobs[job.job_id] = job
        self._enqueue(job)
        return job

    # -- finding and waiting -------------------------------------------------------------------------------------

    async def find(self, job_id: str, function_id: str | None = None) -> Job:
        """The job, from memory or the store; JobNotFound when it does not exist, belongs to another function,
        or is past its retention."""
        job = self.jobs.get(job_id)
        if job is None and len(job_id) <= 40:
            job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or (function_id is not None and job.function_id != function_id) or _expired(job):
            where = "" if function_id is None else " for this service"
            raise JobNotFound(
                f"no job {job_id[:60]!r}{where}; it never existed, or its result was kept for its retention period "
                "and then deleted"
            )
        return job

    async def wait(self, job: Job, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the job to finish; True when it has."""
        if job.state.finished or timeout_s <= 0:
            return job.state.finished
        if job.job_id not in self.jobs:  # held by another server: poll the store
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                await asyncio.sleep(min(0.2, deadline - time.monotonic()))
                fresh = await asyncio.to_thread(self.store.get, job.job_id)
                if fresh is not None and fresh.state.finished:
                    return True
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        job.waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                job.waiters.remove(waiter)
        return True

    async def mark_delivered(self, job: Job) -> None:
        job.delivered = True
        with contextlib.suppress(Exception):
            await self.writer.save(job)

    # -- controls -----------------------------------------------------------------------------------------------

    async def cancel(self, job: Job, *, why: str = "cancelled by a caller") -> Job:
        if job.state.finished:
            raise JobConflict(
                f"job {job.job_id} is already {job.state.value}; only queued or running jobs can be cancelled"
            )
        if job.job_id not in self.jobs:
            raise JobConflict(f"job {job.job_id} is held by another server; cancel it there")
        task = job.task
        await self._finish(job, JobState.cancelled, JobCancelled(f"job {job.job_id} was {why}"))
        if task is not None:
            task.cancel()  # cancels the call in its replica
        return job

    async def retry(self, job: Job) -> Job:
        if job.state not in (JobState.failed, JobState.timed_out):
            raise JobConflict(f"job {job.job_id} is {job.state.value}; only FAILED or TIMED_OUT jobs can be retried")
        now = time.time()
        # A new object, queued only once it is saved: a failed save (a full disk) leaves the job as it was.
        queued = dataclasses.replace(
            job,
            state=JobState.in_queue,
            attempt=0,
            retried=job.retried + 1,
            queued_at=now,
            expires_at=now + job.policy.ttl_s,
            started_at=None,
            finished_at=None,
            retain_until=None,
            error=None,
            output=None,
            output_asset=None,
            delivered=False,
            owner=self.server,
            task=None,
            waiters=[],
            backoff_until=None,
        )
        await self.writer.save(queued)
        self.unsaved.pop(job.job_id, None)
        self.jobs[job.job_id] = queued
        self.queued_count[job.function_id] += 1
        self._enqueue(queued)
        return queued

    async def purge(self, function_id: str) -> int:
        """Cancel every queued job of a function; running ones go on."""
        queued = [
            job for job in self.jobs.values() if job.function_id == function_id and job.state is JobState.in_queue
        ]
        await asyncio.gather(
            *(
                self._finish(job, JobState.cancelled, JobCancelled(f"job {job.job_id} was purged from the queue"))
                for job in queued
            )
        )
        return len(queued)

    # -- what callers see ---------------------------------------------------------------------------------------

    def describe(self, job: Job, *, with_output: bool = True) -> dict[str, Any]:
        return job.describe(reason=self.reason(job), with_output=with_output)

    def reason(self, job: Job) -> str | None:
        """Why a queued job waits, in words."""
        if job.state is not JobState.in_queue:
            return None
        if job in self.backing_off and job.backoff_until is not None:
            return f"attempt {job.attempt + 1} starts in {max(job.backoff_until - time.time(), 0):.1f} s (backoff)"
        if job.job_id not in self.jobs:
            return "held by another server"
        queue = self.queues.get(job.version_id)
        if queue is None or self.supervisor.live(job.version_id) is None:
            if is_disabled(self.supervisor, job.service):
                return f"{job.service} is disabled by its owner; it runs once `fnserve enable {job.service}` starts it"
            return f"no deployed version of {job.service} can run it; deploy the service, or cancel the job"
        live = queue.live
        if live.ready_count == 0:
            return f"no replica ready yet: {live.label} is {live.state.value} (replicas starting)"
        position = queue.position(job) or 1
        if all(connection.in_flight >= live.concurrency for connection in live.ready):
            return (
                f"all {live.ready_count} replica(s) busy ({live.concurrency} calls each); {position - 1} job(s) ahead"
            )
        share = live.slot_limit(_waited_s(job))
        if all(connection.in_flight >= share for connection in live.ready):
            return (
                f"waiting for the replicas a scale-up brings: the {live.ready_count} ready have their share "
                f"({share} calls each); {position - 1} job(s) ahead"
            )
        return f"{position - 1} job(s) ahead"

    def queued_for(self, version_id: str) -> int:
        """Jobs waiting for a version's replicas (part of its load, for the autoscaler)."""
        queue = self.queues.get(version_id)
        return 0 if queue is None else sum(1 for job in queue.pending if job.state is JobState.in_queue)

    def position(self, job: Job) -> int | None:
        if job.state is not JobState.in_queue:
            return None
        queue = self.queues.get(job.version_id)
        if queue is not None:
            found = queue.position(job)
            if found is not None:
                return found
        parked = self.parked.get(job.function_id)
        if parked is not None and job in parked:
            return [j for j in parked if j.state is JobState.in_queue].index(job) + 1
        return None

    async def health(self, function_id: str) -> dict[str, Any]:
        """Runpod's `/health`: jobs by state (those kept for their retention), and the replicas' load."""
        stored, retried = await asyncio.to_thread(self.store.counts, function_id)
        counts = {state.value: stored.get(state.value, 0) for state in JobState}
        workers = {"idle": 0, "running": 0, "starting": 0}
        for live in self.supervisor.live_of(function_id):
            for replica in live.replicas.values():
                if replica.state is ReplicaState.starting:
                    workers["starting"] += 1
                elif replica.state is ReplicaState.ready:
                    workers["running" if replica.in_flight else "idle"] += 1
        return {
            "jobs": {
                "in_queue": counts["IN_QUEUE"],
                "in_progress": counts["IN_PROGRESS"],
                "completed": counts["COMPLETED"],
                "failed": counts["FAILED"],
                "cancelled": counts["CANCELLED"],
                "timed_out": counts["TIMED_OUT"],
                "retried": retried,
            },
            "workers": workers,
        }

    def queue_depth(self, function_id: str) -> dict[str, Any]:
        """Queued and running jobs of a function, by version (this server's)."""
        by_version: dict[int, dict[str, int]] = {}
        for job in self.jobs.values():
            if job.function_id != function_id or job.state.finished:
                continue
            counts = by_version.setdefault(job.version, {"queued": 0, "running": 0})
            counts["queued" if job.state is JobState.in_queue else "running"] += 1
        return {
            "queued": sum(c["queued"] for c in by_version.values()),
            "running": sum(c["running"] for c in by_version.values()),
            "versions": [{"version": number, **counts} for number, counts in sorted(by_version.items())],
        }

    # -- running ---------------------------------------------------------------------------------------------

    def _target(self, job: Job) -> LiveDeployment | None:
        """The deployed version that runs a job: its own, or (unless pinned) the function's current one."""
        live = self.supervisor.live(job.version_id)
        if live is not None and not live.stopping:
            return live
        if job.pinned:
            return None
        candidates = [c for c in self.supervisor.live_of(job.function_id) if not c.stopping]
        if not candidates:
            return None
        chosen = max(candidates, key=lambda c: (c.serving, c.weight > 0, c.version.number))
        job.version_id, job.version = chosen.version.version_id, chosen.version.number
        return chosen

    def _enqueue(self, job: Job) -> None:
        self.backing_off.discard(job)
        if job.state is not JobState.in_queue:
            return
        live = self._target(job)
        if live is None:
            self.parked.setdefault(job.function_id, collections.deque()).append(job)
            return
        queue = self.queues.get(live.version.version_id)
        if queue is None or queue.live is not live:
            queue = self.queues[live.version.version_id] = VersionQueue(live)
        queue.pending.append(job)
        if queue.task is None and not self.paused:
            queue.task = asyncio.create_task(self._feed(queue))

    async def _feed(self, queue: VersionQueue) -> None:
        """Hand a version's queued jobs to its replicas as slots come free, oldest first."""
        live = queue.live
        loop = asyncio.get_running_loop()
        try:
            while queue.pending and not live.stopping and not self.paused:
                connection = live.picker.pick(live.ready)
                if connection is None:
                    self.supervisor.wake(live)  # scaled to zero: a replica starts for these jobs
                head = queue.peek()
                if head is None:
                    break
                waited_s = _waited_s(head)
                if connection is None or connection.in_flight >= live.slot_limit(waited_s):
                    # Held for the replicas a scale-up brings (spread.py): until the hold ends, then any free slot.
                    held = connection is not None and connection.in_flight < live.concurrency
                    hold_ends = loop.time() + live.scale_up_wait_s - waited_s
                    with contextlib.suppress(TimeoutError):
                        await live.wait_turn(hold_ends if held else None)
                    continue
                job = queue.next()
                if job is None:
                    break
                connection.reserve()  # the slot is this job's from now, though its start is still being saved
                self.queued_count[job.function_id] -= 1
                job.state = JobState.in_progress
                self.running.add(job)
                job.task = asyncio.create_task(self._run(job, live, connection))
        finally:
            queue.task = None
            if live.stopping and self.queues.get(live.version.version_id) is queue:
                del self.queues[live.version.version_id]
                for job in queue.pending:  # to the function's current version, or parked until one is deployed
                    self._enqueue(job)
            elif queue.pending and not self.paused and not live.stopping:
                queue.task = asyncio.create_task(self._feed(queue))

    async def _run(self, job: Job, live: LiveDeployment, connection: ReplicaConnection) -> None:
        called = False
        try:
            job.attempt += 1
            job.started_at = time.time()
            job.owner = self.server
            try:
                await self.writer.save(job)  # the attempt is on record before it starts
            except asyncio.CancelledError:
                raise
            except Exception:
                job.attempt -= 1
                job.started_at = None
                self._requeue(job, delay_s=1.0)
                return
            if live.spec.command is not None:  # its input POSTed to the command's inference URL
                called = True
                command = live.spec.command
                output = await run_command_job(connection, live.spec.route_prefix, command, job, reserved=True)
            else:
                route = live.routes.find(job.route)
                if route is None:
                    raise InternalError(f"{live.label} has no endpoint {job.route}; the job cannot run on it")
                context: dict[str, Any] = {
                    "job_id": job.job_id,
                    "attempt": job.attempt,
                    "max_attempts": job.max_attempts,
                }
                if job.assets:
                    paths = await asyncio.to_thread(self.assets.resolve_inputs, job.assets, job.function_id)
                    context["assets"] = {asset_id: str(path) for asset_id, path in paths.items()}
                called = True
                output = await connection.call(
                    route.index,
                    job.body,
                    job.path_params,
                    job.query,
                    job.policy.timeout_s,
                    context=context,
                    reserved=True,
                )
        except asyncio.CancelledError:
            if job.state is JobState.cancelled or self.paused:
                return
            raise
        except ReplicaCrashed as exc:
            await self._attempt_failed(job, exc, retry=True)
        except FunctionError as exc:
            await self._attempt_failed(job, exc, retry=job.policy.retry.retry_on_exception)
        except InvocationTimeout:
            timeout = InvocationTimeout(
                f"attempt {job.attempt} of job {job.job_id} ran past its timeout of {job.policy.timeout_s:g} s and "
                "was cancelled; raise the service's job_timeout, or submit it with a longer policy.timeout_s"
            )
            await self._finish(job, JobState.timed_out, timeout)
        except FnserveError as exc:
            await self._finish(job, JobState.failed, exc)
        except Exception:
            logger.exception("Job [%s] failed in the dispatcher", job.job_id)
            await self._finish(job, JobState.failed, InternalError(f"job {job.job_id} failed; see the server log"))
        else:
            try:
                await self._complete(job, output)
            except Exception:  # it ran; keeping its result failed: the job must not stay IN_PROGRESS for ever
                logger.exception("Job [%s] ran, but its result could not be kept", job.job_id)
                await self._finish(job, JobState.failed, InternalError(f"job {job.job_id} failed; see the server log"))
        finally:
            job.task = None
            if not called:
                connection.unreserve()

    async def _complete(self, job: Job, output: bytes | Response) -> None:
        if job.state is not JobState.in_progress:
            return  # cancelled while its result was on the way
        if isinstance(output, Response):  # not JSON: kept as an asset of its media type, whatever its size
            expires_at = time.time() + job.policy.retention_s
            asset = await asyncio.to_thread(
                self.assets.store_result,
                job.function_id,
                output.content,
                expires_at=expires_at,
                content_type=output.media_type,
            )
            job.output_asset = asset.asset_id
        elif len(output) > self.inline_result_bytes:
            expires_at = time.time() + job.policy.retention_s
            try:
                asset = await asyncio.to_thread(
                    self.assets.store_result, job.function_id, output, expires_at=expires_at
                )
            except StorageUnavailable as exc:  # the result is lost; the job can be retried once there is room
                logger.error("Job [%s] ran, but its result could not be stored: %s", job.job_id, exc.message)
                await self._finish(job, JobState.failed, exc)
                return
            job.output_asset = asset.asset_id
        else:
            job.output = output
        await self._finish(job, JobState.completed, None)

    async def _attempt_failed(self, job: Job, exc: FnserveError, *, retry: bool) -> None:
        if job.state is not JobState.in_progress:
            return
        if not retry or job.attempt >= job.max_attempts:
            await self._finish(job, JobState.failed, exc)
            return
        delay_s = job.policy.retry.delay_before(job.attempt + 1)
        logger.warning(
            "Job [%s] attempt %d of %d failed (%s); trying again in %.1f s",
            job.job_id,
            job.attempt,
            job.max_attempts,
            exc.message,
            delay_s,
        )
        job.error = exc.to_dict()["error"]
        self._requeue(job, delay_s=delay_s)
        with contextlib.suppress(Exception):
            await self.writer.save(job)

    def _requeue(self, job: Job, *, delay_s: float) -> None:
        self.running.discard(job)
        job.state = JobState.in_queue
        job.retried += 1
        job.queued_at = time.time()
        self.queued_count[job.function_id] += 1
        if delay_s <= 0:
            self._enqueue(job)
            return
        job.backoff_until = job.queued_at + delay_s
        self.backing_off.add(job)
        asyncio.get_running_loop().call_later(delay_s, self._enqueue, job)

    async def _finish(self, job: Job, state: JobState, error: FnserveError | None) -> None:
        if job.state is JobState.in_queue:
            self.queued_count[job.function_id] -= 1
        self.running.discard(job)
        self.backing_off.discard(job)
        now = time.time()
        job.state = state
        job.finished_at = now
        job.retain_until = now + job.policy.retention_s
        job.error = None if error is None else error.to_dict()["error"]
        await self._save_finished(job)
        for waiter in job.waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _save_finished(self, job: Job) -> None:
        """Save a finished job's outcome, then let it leave memory (it is read from the store after); one that cannot
        be saved stays, for polls to see, until the sweep saves it."""
        try:
            await self.writer.save(job)
        except StorageUnavailable as exc:
            self.save_outage.failed(exc)
            self.unsaved[job.job_id] = job
            return
        except Exception:
            logger.exception("Job [%s] ended %s, but that could not be saved", job.job_id, job.state.value)
            self.unsaved[job.job_id] = job
            return
        self.save_outage.succeeded()
        self.unsaved.pop(job.job_id, None)
        if self.jobs.get(job.job_id) is job and job.state.finished:  # not retried meanwhile
            del self.jobs[job.job_id]

    # -- background work ---------------------------------------------------------------------------------------

    async def _claim(self, *, own: bool) -> None:
        """Take over unfinished jobs nobody alive holds: queued ones queue here; a running one lost its attempt."""
        claimed = await asyncio.to_thread(
            self.store.claim_orphans, self.server, stale_before=time.time() - STALE_AFTER_S, own=own
        )
        if not claimed:
            return
        interrupted = 0
        for job in claimed:
            if job.job_id in self.jobs:
                continue
            self.jobs[job.job_id] = job
            if job.state is JobState.in_progress:
                interrupted += 1
                if job.attempt >= job.max_attempts:
                    await self._finish(
                        job,
                        JobState.failed,
                        ReplicaCrashed(
                            f"the server running job {job.job_id} stopped during its last attempt "
                            f"({job.attempt} of {job.max_attempts})"
                        ),
                    )
                    continue
                job.state = JobState.in_queue
                job.retried += 1
                job.queued_at = time.time()
                self.writer.save(job)
            self.queued_count[job.function_id] += 1
            self._enqueue(job)
        logger.info("Took over %d unfinished job(s), %d of them interrupted mid-run", len(claimed), interrupted)

    def _queued(self) -> list[Job]:
        """Every queued job this server holds: in a version's queue, parked, or backing off."""
        queued = [job for queue in self.queues.values() for job in queue.pending]
        queued += [job for parked in self.parked.values() for job in parked]
        queued += self.backing_off
        # A job timed out in a queue and retried since is in it twice; it counts once.
        return list({job.job_id: job for job in queued if job.state is JobState.in_queue}.values())

    async def _heartbeats(self) -> None:
        while True:
            with self._loop_step("heartbeat"):
                await asyncio.to_thread(self.store.heartbeat, self.server, time.time())
                await self._claim(own=False)
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    @contextlib.contextmanager
    def _loop_step(self, name: str) -> Iterator[None]:
        """One pass of a background loop: a storage failure is one line per outage, anything else a traceback; the
        loop goes on either way."""
        outage = self.loop_outages[name]
        try:
            yield
        except StorageUnavailable as exc:
            outage.failed(exc)
        except Exception:
            logger.exception("%s failed", outage.what)
        else:
            outage.succeeded()

    async def _sweep(self) -> None:
        """TTLs of queued jobs; parked jobs to a version deployed since; finished jobs not saved yet, saved."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            with self._loop_step("sweep"):
                now = time.time()
                for job in [job for job in self._queued() if job.expires_at < now]:
                    await self._finish(
                        job,
                        JobState.timed_out,
                        InvocationTimeout(
                            f"job {job.job_id} did not start within its ttl of {job.policy.ttl_s:g} s; add "
                            "replicas, or submit it with a longer policy.ttl_s"
                        ),
                    )
                for function_id, parked in list(self.parked.items()):
                    if any(not live.stopping for live in self.supervisor.live_of(function_id)):
                        del self.parked[function_id]
                        for job in parked:
                            self._enqueue(job)
                if self.unsaved:
                    await asyncio.gather(*(self._save_finished(job) for job in list(self.unsaved.values())))

    async def _expire_retained(self) -> None:
        """Finished jobs past their retention, result assets past theirs, and assets never uploaded by their
        deadline: deleted."""
        while True:
            with self._loop_step("expiry"):
                await asyncio.to_thread(self.store.delete_expired, time.time())
                await asyncio.to_thread(self.assets.delete_expired, time.time())
            await asyncio.sleep(RETENTION_SWEEP_S)


def _waited_s(job: Job) -> float:
    """How long a queued job has waited for a slot: since it was queued, or since its retry's backoff ended."""
    return max(time.time() - max(job.queued_at, job.backoff_until or 0.0), 0.0)


# The background loops, and how their failures are named in the log.
_LOOPS = {
    "heartbeat": "Job heartbeat",
    "sweep": "Job sweep",
    "expiry": "Deleting jobs and assets past their retention",
}


def _expired(job: Job) -> bool:
    return job.retain_until is not None and job.retain_until < time.time()
