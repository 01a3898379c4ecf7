"""The default backend: each replica is a subprocess of the server, on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import IO

from fnserve.backends.base import ReplicaLaunch


class LocalReplicaProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self._process = process
        self._log = log

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def wait(self) -> int:
        try:
            return await self._process.wait()
        finally:
            self._log.close()

    def _signal(self, signum: int) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signum)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class LocalBackend:
    name = "local"

    def __init__(self, *, python: str | None = None) -> None:
        self.python = python or sys.executable

    async def start(self, launch: ReplicaLaunch) -> LocalReplicaProcess:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(launch.log_path, "ab")  # noqa: SIM115 -- closed by LocalReplicaProcess.wait
        threads = str(max(1, int(launch.resources.num_cpus)))
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FNSERVE_REPLICA_ID": launch.replica_id,
            # Numeric libraries size their pools from these; match the CPUs the replica asked for.
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
        }
        process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "fnserve.runtime.worker",
            *launch.worker_args(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            # Its own session: Ctrl-C at the terminal reaches the server, which stops replicas in order.
            start_new_session=True,
        )
        return LocalReplicaProcess(process, log)

    async def close(self) -> None:
        return None
