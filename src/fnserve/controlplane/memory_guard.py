"""Memory limits: every `Timeouts.memory_interval_s` the replicas whose service set `Resources(memory=...)` are
measured (by their backend: the local one reads /proc), and one over its limit is killed with the reason
("used 612 MB, over its memory limit of 500 MB ..."), then replaced like any replica that died.

Enforced by measuring rather than by a kernel limit (cgroups need privileges the server rarely has): a replica
may go over for up to one interval before it is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fnserve._units import format_memory

if TYPE_CHECKING:
    from fnserve.backends.base import ReplicaProcess
    from fnserve.controlplane.supervisor import LiveDeployment, Replica, Supervisor

logger = logging.getLogger("fnserve.supervisor")


def over_limit(used_bytes: int, limit_bytes: int) -> str:
    """The reason a replica was stopped, worded to follow its label ("Replica [...] used 612 MB, ...")."""
    return (
        f"used {format_memory(used_bytes)}, over its memory limit of {format_memory(limit_bytes)} "
        "(raise Resources(memory=...) if it needs more)"
    )


class MemoryGuard:
    """Stops the replicas that use more memory than their service's `Resources.memory`."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    async def run(self) -> None:
        """Measure every interval until cancelled; a failed round is logged and the next one runs."""
        while True:
            await asyncio.sleep(self.supervisor.settings.timeouts.memory_interval_s)
            try:
                await self.check()
            except Exception:
                logger.exception("Memory limits could not be checked")

    async def check(self) -> None:
        """One round: measure every limited replica (one pass for all of them), stop those over their limit."""
        # Local import: the supervisor imports this module.
        from fnserve.controlplane.supervisor import ReplicaState

        watched: list[tuple[LiveDeployment, Replica, ReplicaProcess]] = [
            (live, replica, replica.process)
            for live in list(self.supervisor.deployments.values())
            if live.resources.memory is not None and not live.stopping
            for replica in list(live.replicas.values())
            if replica.process is not None
            and replica.state in (ReplicaState.starting, ReplicaState.ready)
            and replica.killed_because is None
        ]
        if not watched:
            return
        used = await asyncio.to_thread(self.supervisor.backend.memory_used, [process for *_, process in watched])
        for (live, replica, process), used_bytes in zip(watched, used, strict=True):
            limit = live.resources.memory
            if used_bytes is None or limit is None or used_bytes <= limit or replica.killed_because is not None:
                continue
            reason = over_limit(used_bytes, limit)
            replica.killed_because = reason
            if replica.state is ReplicaState.ready:
                # Out of the ready list, its calls failing with the reason, killed, then replaced (with backoff
                # when it keeps happening), as a replica that failed its health checks.
                self.supervisor._replace_unhealthy(live, replica, reason)
            elif replica.state is ReplicaState.starting:  # its initializer: the start fails with the reason
                logger.warning("%s of service [%s] %s; stopping it", replica.label, live.label, reason)
                process.kill()
