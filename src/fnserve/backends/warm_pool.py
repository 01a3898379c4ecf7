"""Pre-started workers: interpreters that have already imported fnserve, waiting to be told which replica to be.

Most of a replica's start is Python importing fnserve, pydantic and asyncio before the user's code loads (see
benchmarks/COLD_START_RESULTS.md). A standby worker does that ahead of time, so a replica started at request
time (scaling up, or from zero) only loads the user's code and runs its initializer. Each standby is its own
session, like any replica, and exits when the server closes its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import orjson

from fnserve.runtime.worker import STANDBY_FLAG

logger = logging.getLogger("fnserve.backends")

STOP_TIMEOUT_S = 5.0  # for a standby to exit once its stdin is closed


class WarmPool:
    def __init__(self, python: str, env: Mapping[str, str]) -> None:
        self.python = python
        self.env = dict(env)
        self.wanted = 0
        self._standby: list[asyncio.subprocess.Process] = []
        self._leaving: list[asyncio.subprocess.Process] = []  # told to exit; `close` waits for the last of them
        self._refill: asyncio.Task[None] | None = None

    def keep(self, count: int) -> None:
        """Keep `count` standby workers from now on (0: none; the ones there are stop)."""
        if count == self.wanted:
            return
        self.wanted = count
        self._leaving = [process for process in self._leaving if process.returncode is None]
        while len(self._standby) > count:
            process = self._standby.pop()
            _stop(process)
            self._leaving.append(process)
        self._refill_soon()

    async def take(
        self, *, env: Mapping[str, str], log_path: str, argv: list[str]
    ) -> asyncio.subprocess.Process | None:
        """A standby worker made into a replica with this environment, log and arguments; None when none waits."""
        while self._standby:
            process = self._standby.pop(0)
            if process.returncode is not None or process.stdin is None:
                continue  # died while waiting (killed from outside): try the next
            assignment = orjson.dumps({"env": dict(env), "log": log_path, "argv": argv}) + b"\n"
            try:
                process.stdin.write(assignment)
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                continue
            self._refill_soon()  # the replica it became needs little CPU now: its imports are done
            return process
        self._refill_soon()
        return None

    def _refill_soon(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        self._standby = [process for process in self._standby if process.returncode is None]
        while len(self._standby) < self.wanted:
            try:
                process = await asyncio.create_subprocess_exec(
                    self.python,
                    "-m",
                    "fnserve.runtime.worker",
                    STANDBY_FLAG,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError:
                logger.exception("A standby worker could not start; replicas start from scratch meanwhile")
                return
            self._standby.append(process)

    async def close(self) -> None:
        """Stop every standby and wait until each has exited (the loop must not close on a live child)."""
        self.wanted = 0
        if self._refill is not None:  # not cancelled: a spawn cut short would leave a process nobody waits for
            await self._refill
        processes = self._standby + self._leaving
        self._standby, self._leaving = [], []
        for process in processes:
            _stop(process)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:  # still importing on a starved machine, or stuck: it runs no user code
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def _stop(process: asyncio.subprocess.Process) -> None:
    """A standby that runs no user code: closing its stdin is enough, it exits at once."""
    if process.stdin is not None:
        process.stdin.close()
