"""The one interface the supervisor uses to start and stop replica processes, whatever runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fnserve.backends.inventory import Allocation
from fnserve.spec import Resources


@dataclass(frozen=True)
class ReplicaLaunch:
    """Everything a backend needs to start one replica."""

    replica_id: str
    service_name: str
    connect: str  # the server's replica socket the worker connects back to
    resources: Resources
    log_path: Path
    code_dir: Path | None = None
    entrypoint: str | None = None
    pickle_path: Path | None = None
    init_path: Path | None = None
    max_threads: int = 8
    allocation: Allocation | None = None  # the GPUs (and amounts) placement gave it; None: no GPU
    # The interpreter of the service's own environment, and the runtime overlay it borrows (envs/runtime.py);
    # None: the server's interpreter and packages.
    python: Path | None = None
    overlay: Path | None = None
    credential: str = ""  # what its HELLO proves it is this replica with; passed in its environment, never its argv
    command: str | None = None  # a command service's ServiceSpec (JSON): the worker runs its command in `code_dir`

    def worker_args(self) -> list[str]:
        args = ["--connect", self.connect, "--replica-id", self.replica_id, "--max-threads", str(self.max_threads)]
        if self.command is not None:
            args += ["--command", self.command]
            if self.code_dir is not None:
                args += ["--code-dir", str(self.code_dir)]
        elif self.pickle_path is not None:
            args += ["--pickle", str(self.pickle_path)]
        else:
            assert self.code_dir is not None
            assert self.entrypoint is not None
            args += ["--code-dir", str(self.code_dir), "--entrypoint", self.entrypoint]
        if self.init_path is not None:
            args += ["--init", str(self.init_path)]
        return args


class ReplicaProcess(Protocol):
    """A started replica, as its backend sees it."""

    @property
    def pid(self) -> int | None: ...

    async def wait(self) -> int:
        """Wait for the process to end; return its exit code (negative: killed by that signal)."""
        ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class Backend(Protocol):
    """Places replicas. `LocalBackend` runs subprocesses; nothing else in the server knows which one runs."""

    name: str

    async def start(self, launch: ReplicaLaunch) -> ReplicaProcess: ...

    def keep_warm(self, count: int) -> None:
        """Keep `count` workers started ahead of need, so replicas started at request time start faster (0: none).
        A backend that cannot does nothing."""
        ...

    def memory_used(self, processes: Sequence[ReplicaProcess]) -> list[int | None]:
        """The resident memory of each replica, in bytes (None: unknown, so not limited). Blocking: call it in a
        thread. The supervisor stops a replica over its `Resources.memory`."""
        ...

    async def close(self) -> None: ...
