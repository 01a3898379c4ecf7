"""The default backend: each replica is a subprocess of the server, on this machine, seeing only its own GPUs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import IO

from fnserve.backends.base import ReplicaLaunch, ReplicaProcess
from fnserve.backends.memory import session_rss_bytes
from fnserve.backends.warm_pool import WarmPool
from fnserve.composition.credentials import CREDENTIAL_VARIABLE
from fnserve.disk import storage_error
from fnserve.envs.runtime import bootstrap_command
from fnserve.home import private_fd

# Numeric libraries size their thread pools from these; each gets the CPUs the replica asked for.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",  # OpenMP, and PyTorch's intra-op pool
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",  # Apple Accelerate
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",  # Rust extensions: polars, tokenizers
)


class LocalReplicaProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: IO[bytes] | None) -> None:
        self._process = process
        self._log = log

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def wait(self) -> int:
        try:
            return await self._process.wait()
        finally:
            if self._log is not None:  # a standby worker opened its log itself
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
        # Every replica's environment starts from the server's; PYTHONUNBUFFERED so its log is written as it goes.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.warm = WarmPool(self.python, self.env)

    def keep_warm(self, count: int) -> None:
        self.warm.keep(count)

    async def start(self, launch: ReplicaLaunch) -> LocalReplicaProcess:
        try:
            launch.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, launch.log_path.parent) or exc from None
        threads = str(max(1, int(launch.resources.num_cpus)))
        own_env = {
            "FNSERVE_REPLICA_ID": launch.replica_id,
            CREDENTIAL_VARIABLE: launch.credential,
            **dict.fromkeys(THREAD_VARIABLES, threads),
            # Only its own GPUs, numbered as NVML and nvidia-smi number them; "" hides every GPU from a replica
            # that has none, so it cannot take one by accident.
            "CUDA_VISIBLE_DEVICES": launch.allocation.cuda_visible_devices if launch.allocation is not None else "",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }
        if launch.python is None:
            standby = await self.warm.take(env=own_env, log_path=str(launch.log_path), argv=launch.worker_args())
            if standby is not None:
                return LocalReplicaProcess(standby, None)
            command = [self.python, "-m", "fnserve.runtime.worker", *launch.worker_args()]
        else:
            # Its own environment, through the bootstrap that keeps the runtime's packages out of the service's way.
            assert launch.overlay is not None
            command = bootstrap_command(launch.python, launch.overlay, *launch.worker_args())
        try:
            log = os.fdopen(private_fd(launch.log_path), "ab")  # closed by LocalReplicaProcess.wait
        except OSError as exc:
            raise storage_error(exc, launch.log_path.parent) or exc from None
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**self.env, **own_env},
            # Its own session: Ctrl-C at the terminal reaches the server, which stops replicas in order.
            start_new_session=True,
        )
        return LocalReplicaProcess(process, log)

    def memory_used(self, processes: Sequence[ReplicaProcess]) -> list[int | None]:
        """Each replica's process tree (its session) in resident bytes, from one pass over /proc."""
        used = session_rss_bytes([process.pid for process in processes if process.pid is not None])
        return [used.get(process.pid) if process.pid is not None else None for process in processes]

    async def close(self) -> None:
        await self.warm.close()
