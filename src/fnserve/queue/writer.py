"""Group commits: every job saved while one transaction runs is written by the next, together.

Submitting, starting and finishing a job each must be durable before anyone is told, but one
transaction per change would cap the queue at a few hundred jobs a second on SQLite. Callers
`await writer.save(job)`; all saves queued while the previous batch was being written share one
transaction, so the batch grows with the load and each caller waits about one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa

from fnserve.disk import OutageLog
from fnserve.errors import StorageUnavailable
from fnserve.store.jobs import Job, JobStore

logger = logging.getLogger("fnserve.queue")

# A locked or briefly unreachable database is retried before the callers are told the save failed.
WRITE_ATTEMPTS = 5


class BatchWriter:
    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._inserts: dict[str, Job] = {}
        self._updates: dict[str, Job] = {}
        self._deletes: set[str] = set()
        self._batch: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.outage = OutageLog(logger, "Saving jobs")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Write what is pending (and whatever is being written), then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        with contextlib.suppress(Exception):
            await self._task
        self._task = None

    def insert(self, job: Job) -> asyncio.Future[None]:
        self._inserts[job.job_id] = job
        return self._pending()

    def save(self, job: Job) -> asyncio.Future[None]:
        """Write the job as it is when the batch is written (later changes in the same batch included)."""
        if job.job_id not in self._inserts:
            self._updates[job.job_id] = job
        return self._pending()

    def delete(self, job_id: str) -> asyncio.Future[None]:
        self._inserts.pop(job_id, None)
        self._updates.pop(job_id, None)
        self._deletes.add(job_id)
        return self._pending()

    def _pending(self) -> asyncio.Future[None]:
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            self._wake.set()
        return self._batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, None
            if batch is None:
                if self._closing:
                    return
                continue
            self._wake.set()  # look again after this batch: close() may come while it is written
            inserts, self._inserts = list(self._inserts.values()), {}
            updates, self._updates = list(self._updates.values()), {}
            deletes, self._deletes = self._deletes, set()
            try:
                await self._write(inserts, updates, deletes)
            except Exception as exc:
                if isinstance(exc, StorageUnavailable):  # each caller answers or logs it; here one line per outage
                    self.outage.failed(exc)
                else:
                    logger.exception("Saving %d job change(s) failed", len(inserts) + len(updates) + len(deletes))
                if not batch.done():
                    batch.set_exception(exc)
                    batch.exception()  # retrieved here, so a caller that left does not leave a warning
            else:
                self.outage.succeeded()
                if not batch.done():
                    batch.set_result(None)

    async def _write(self, inserts: list[Job], updates: list[Job], deletes: set[str]) -> None:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(self.store.apply, inserts, updates, deletes)
                return
            except sa.exc.OperationalError:
                if attempt == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)
