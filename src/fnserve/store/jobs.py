"""Queued jobs as the store keeps them, and the servers that hold them.

A `Job` is mutable: the dispatcher moves it through its states in memory and saves it through the
batching writer (`fnserve.queue.writer`), which calls `JobStore.apply` with many jobs at once.
Everything here is synchronous SQLAlchemy Core; async callers run it in a thread.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.spec import RetryPolicy
from fnserve.store.tables import functions, jobs, servers, versions


class JobState(enum.StrEnum):
    """States of a job, as Runpod names them on the wire."""

    in_queue = "IN_QUEUE"
    in_progress = "IN_PROGRESS"
    completed = "COMPLETED"
    failed = "FAILED"
    cancelled = "CANCELLED"
    timed_out = "TIMED_OUT"

    @property
    def finished(self) -> bool:
        return self not in (JobState.in_queue, JobState.in_progress)


UNFINISHED = (JobState.in_queue.value, JobState.in_progress.value)


@dataclass(frozen=True)
class JobPolicy:
    """What the service (or the submitter) decided for one job: retries, time limits, retention."""

    retry: RetryPolicy
    timeout_s: float
    ttl_s: float
    retention_s: float

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "retry": self.retry.model_dump(),
                "timeout_s": self.timeout_s,
                "ttl_s": self.ttl_s,
                "retention_s": self.retention_s,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> JobPolicy:
        data = orjson.loads(text)
        return cls(RetryPolicy(**data["retry"]), data["timeout_s"], data["ttl_s"], data["retention_s"])


@dataclass(eq=False)
class Job:
    """One queued invocation. The fields above the line are its row; those below live in memory only."""

    job_id: str
    function_id: str
    version_id: str
    pinned: bool
    route: str  # "METHOD /path" as the endpoint declares it
    body: bytes
    path_params: dict[str, str]
    query: dict[str, Any]
    assets: list[str]
    policy: JobPolicy
    state: JobState
    created_at: float
    queued_at: float
    expires_at: float
    attempt: int = 0
    retried: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    retain_until: float | None = None
    output: bytes | None = None
    output_asset: str | None = None
    error: dict[str, Any] | None = None
    owner: str | None = None
    delivered: bool = False
    # -- memory only ------------------------------------------------------------------------------------------
    service: str = ""
    version: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)
    backoff_until: float | None = None  # queued again after a failed attempt, not before this time

    @property
    def max_attempts(self) -> int:
        return self.policy.retry.max_attempts

    def describe(
        self, *, now: float | None = None, reason: str | None = None, with_output: bool = True
    ) -> dict[str, Any]:
        """The job as `/status` answers it (docs/JOBS.md)."""
        now = time.time() if now is None else now
        if self.started_at is None or self.started_at < self.queued_at:
            delay_end = now if self.state is JobState.in_queue else (self.finished_at or now)
            delay_ms = max(delay_end - self.queued_at, 0) * 1000
            execution_ms = None
        else:
            delay_ms = max(self.started_at - self.queued_at, 0) * 1000
            execution_ms = max((self.finished_at or now) - self.started_at, 0) * 1000
        described: dict[str, Any] = {
            "id": self.job_id,
            "status": self.state.value,
            "service": self.service,
            "version": self.version,
            "endpoint": self.route,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "retried": self.retried,
            "delay_ms": round(delay_ms, 3),
            "execution_ms": None if execution_ms is None else round(execution_ms, 3),
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
            "reason": reason,
        }
        if with_output:
            described["output"] = orjson.loads(self.output) if self.output is not None else None
            described["output_url"] = asset_content_url(self.output_asset) if self.output_asset else None
        return described


def asset_content_url(asset_id: str) -> str:
    return f"/v1/assets/{asset_id}/content"


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


def _row(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "function_id": job.function_id,
        "version_id": job.version_id,
        "pinned": job.pinned,
        "route": job.route,
        "body": job.body,
        "path_params": orjson.dumps(job.path_params).decode(),
        "query": orjson.dumps(job.query).decode(),
        "assets": orjson.dumps(job.assets).decode(),
        "policy": job.policy.to_json(),
        **_changes(job),
    }


def _changes_columns() -> list[str]:
    return [
        "version_id",
        "state",
        "attempt",
        "retried",
        "created_at",
        "queued_at",
        "expires_at",
        "started_at",
        "finished_at",
        "retain_until",
        "output",
        "output_asset",
        "error",
        "owner",
        "delivered",
    ]


def _changes(job: Job) -> dict[str, Any]:
    """The columns that change after a job is submitted."""
    return {
        "version_id": job.version_id,
        "state": job.state.value,
        "attempt": job.attempt,
        "retried": job.retried,
        "created_at": job.created_at,
        "queued_at": job.queued_at,
        "expires_at": job.expires_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "retain_until": job.retain_until,
        "output": job.output,
        "output_asset": job.output_asset,
        "error": orjson.dumps(job.error).decode() if job.error is not None else None,
        "owner": job.owner,
        "delivered": job.delivered,
    }


# One statement for every update: each job's changing columns, bound by name, so many jobs go in one executemany.
_UPDATE = (
    jobs.update()
    .where(jobs.c.job_id == sa.bindparam("b_job_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in _changes_columns()})
)


def _job(row: Any, names: dict[str, tuple[str, int]]) -> Job:
    service, number = names.get(row.version_id, ("?", 0))
    return Job(
        job_id=row.job_id,
        function_id=row.function_id,
        version_id=row.version_id,
        pinned=row.pinned,
        route=row.route,
        body=row.body,
        path_params=orjson.loads(row.path_params),
        query=orjson.loads(row.query),
        assets=orjson.loads(row.assets),
        policy=JobPolicy.from_json(row.policy),
        state=JobState(row.state),
        created_at=row.created_at,
        queued_at=row.queued_at,
        expires_at=row.expires_at,
        attempt=row.attempt,
        retried=row.retried,
        started_at=row.started_at,
        finished_at=row.finished_at,
        retain_until=row.retain_until,
        output=row.output,
        output_asset=row.output_asset,
        error=orjson.loads(row.error) if row.error is not None else None,
        owner=row.owner,
        delivered=row.delivered,
        service=service,
        version=number,
    )


class JobStore:
    """Jobs and server heartbeats in the state store's database (the same engine as `StateStore`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes, batched -----------------------------------------------------------------------------------------

    def apply(self, inserts: Sequence[Job], updates: Sequence[Job], deletes: Iterable[str] = ()) -> None:
        """Insert, update and delete many jobs in one transaction (each job as it is now)."""
        with self.engine.begin() as connection:
            if inserts:
                connection.execute(jobs.insert(), [_row(job) for job in inserts])
            if updates:
                connection.execute(
                    _UPDATE,
                    [{"b_job_id": job.job_id, **{f"b_{k}": v for k, v in _changes(job).items()}} for job in updates],
                )
            deleted = list(deletes)
            if deleted:
                connection.execute(jobs.delete().where(jobs.c.job_id.in_(deleted)))

    # -- reads ---------------------------------------------------------------------------------------------------

    def _names(self, connection: sa.Connection, version_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        wanted = set(version_ids)
        if not wanted:
            return {}
        query = (
            sa.select(versions.c.version_id, versions.c.number, functions.c.name)
            .join(functions, functions.c.function_id == versions.c.function_id)
            .where(versions.c.version_id.in_(wanted))
        )
        return {row.version_id: (row.name, row.number) for row in connection.execute(query)}

    def _jobs(self, query: sa.Select[Any]) -> list[Job]:
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            names = self._names(connection, (row.version_id for row in rows))
        return [_job(row, names) for row in rows]

    def get(self, job_id: str) -> Job | None:
        found = self._jobs(sa.select(jobs).where(jobs.c.job_id == job_id))
        return found[0] if found else None

    def find(self, *, function_id: str | None = None, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        query = sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if function_id is not None:
            query = query.where(jobs.c.function_id == function_id)
        if state is not None:
            query = query.where(jobs.c.state == state.value)
        return self._jobs(query)

    def counts(self, function_id: str) -> tuple[dict[str, int], int]:
        """Jobs of a function by state, and how many were retried at least once."""
        with self.engine.connect() as connection:
            by_state = connection.execute(
                sa.select(jobs.c.state, sa.func.count()).where(jobs.c.function_id == function_id).group_by(jobs.c.state)
            ).all()
            retried = connection.execute(
                sa.select(sa.func.count()).where(jobs.c.function_id == function_id, jobs.c.retried > 0)
            ).scalar_one()
        return {state: count for state, count in by_state}, retried

    # -- servers and their jobs --------------------------------------------------------------------------------

    def heartbeat(self, server_id: str, now: float) -> None:
        with self.engine.begin() as connection:
            updated = connection.execute(
                servers.update().where(servers.c.server_id == server_id).values(heartbeat_at=now)
            ).rowcount
            if not updated:
                connection.execute(servers.insert().values(server_id=server_id, started_at=now, heartbeat_at=now))

    def claim_orphans(self, server_id: str, *, stale_before: float, own: bool) -> list[Job]:
        """Take over the unfinished jobs of servers whose heartbeat stopped before `stale_before` (and, with
        `own`, those this server held before it restarted): they are this server's from now on."""
        with self.engine.begin() as connection:
            stale = sa.select(servers.c.server_id).where(
                servers.c.heartbeat_at < stale_before, servers.c.server_id != server_id
            )
            holders = jobs.c.owner.in_(stale) | jobs.c.owner.is_(None)
            if own:
                holders = holders | (jobs.c.owner == server_id)
            claimable = sa.and_(jobs.c.state.in_(UNFINISHED), holders)
            if own:
                # Everything unfinished and not held by a live server: claim first, then read what is ours.
                connection.execute(jobs.update().where(claimable).values(owner=server_id))
                rows = connection.execute(
                    sa.select(jobs)
                    .where(jobs.c.state.in_(UNFINISHED), jobs.c.owner == server_id)
                    .order_by(jobs.c.queued_at)
                ).all()
            else:
                ids = [row.job_id for row in connection.execute(sa.select(jobs.c.job_id).where(claimable))]
                if not ids:
                    return []
                connection.execute(jobs.update().where(jobs.c.job_id.in_(ids)).values(owner=server_id))
                rows = connection.execute(
                    sa.select(jobs).where(jobs.c.job_id.in_(ids)).order_by(jobs.c.queued_at)
                ).all()
            connection.execute(servers.delete().where(servers.c.heartbeat_at < stale_before))
            names = self._names(connection, (row.version_id for row in rows))
        return [_job(row, names) for row in rows]

    def delete_expired(self, now: float) -> list[tuple[str, str | None]]:
        """Delete finished jobs past their retention; returns (job id, result asset id) of each."""
        with self.engine.begin() as connection:
            rows = connection.execute(
                sa.select(jobs.c.job_id, jobs.c.output_asset).where(jobs.c.retain_until < now)
            ).all()
            if rows:
                connection.execute(jobs.delete().where(jobs.c.job_id.in_([row.job_id for row in rows])))
        return [(row.job_id, row.output_asset) for row in rows]
