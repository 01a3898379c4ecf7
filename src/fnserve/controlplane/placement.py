"""Placement: a replica reserves the CPUs, memory and GPUs it needs before it starts, waits (its deployment in
DEPLOYING, with the reason) while they are not free, and gives them back when its process exits.

The bookkeeping is `backends/inventory.py`; the waiting, the reasons and the refusals live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

from fnserve.backends.base import ReplicaProcess
from fnserve.backends.inventory import Inventory
from fnserve.errors import ValidationFailed
from fnserve.spec import Resources
from fnserve.store import DeploymentState

if TYPE_CHECKING:
    from fnserve.controlplane.supervisor import LiveDeployment, Replica, Supervisor

logger = logging.getLogger("fnserve.supervisor")

WAITING = "waiting for resources: "
RECHECK_S = 1.0  # a waiting replica also looks again this often: a scale-down may no longer want it


def check_fits(inventory: Inventory, service_name: str, resources: Resources, replicas: int) -> None:
    """Raise ValidationFailed (422) when `replicas` replicas needing `resources` can never run on this host."""
    reason = inventory.never_fits(resources, replicas=max(1, replicas))
    if reason is not None:
        raise ValidationFailed(
            f"Service {service_name!r} cannot run on this host: {reason}. Ask for less (Resources(num_gpus=..., "
            "memory=...), fewer replicas), or deploy it on a server whose host has it; GET /v1/resources shows "
            "what this one has",
            details={"fields": [{"field": "resources", "message": reason}]},
        )


class Placement:
    """The host's inventory, the replicas waiting for it, and the watchers that free it when a process exits."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._waiters: list[asyncio.Future[None]] = []
        self._watchers: set[asyncio.Task[None]] = set()

    async def place(self, supervisor: Supervisor, live: LiveDeployment, replica: Replica) -> bool:
        """Reserve what `replica` needs, waiting while it does not fit: the replica's reason (and its deployment's,
        while DEPLOYING) says what it waits for. False, with the replica removed, when it is no longer wanted
        before it fits (scaled down, or its deployment stops)."""
        shown: str | None = None
        while True:
            if live.stopping or replica.retiring:
                live.replicas.pop(replica.replica_id, None)
                return False
            reason = self.inventory.fits(live.resources)
            if reason is None:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)  # before any await, so that a release meanwhile is not missed
            try:
                self._make_room(supervisor, live)
                if reason != shown:
                    shown = reason
                    replica.reason = WAITING + reason
                    logger.info("%s of service [%s] is waiting for resources: %s", replica.label, live.label, reason)
                    if live.state is DeploymentState.deploying and live.reason != replica.reason:
                        await supervisor._set_state(live, DeploymentState.deploying, replica.reason)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_S):
                        await waiter
            finally:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.inventory.reserve(replica.replica_id, live.resources)
        if shown is not None:
            replica.reason = None
            replica.started_at = time.time()  # its cold start counts from now, not from when it began to wait
            try:
                others_wait = any((r.reason or "").startswith(WAITING) for r in live.replicas.values())
                if (
                    live.state is DeploymentState.deploying
                    and (live.reason or "").startswith(WAITING)
                    and not others_wait
                ):
                    await supervisor._set_state(live, DeploymentState.deploying, None)
            except BaseException:
                self.release(replica.replica_id)
                raise
        return True

    def _make_room(self, supervisor: Supervisor, live: LiveDeployment) -> None:
        """Blue/green needs room for both versions. When the versions this one replaces hold what it waits for, stop
        them now rather than wait for ever (each would wait for the other): the service is down until it is READY."""
        if not live.replaces:
            return
        replaced = [old for version_id in live.replaces if (old := supervisor.live(version_id)) is not None]
        held: Collection[str] = [replica_id for old in replaced for replica_id in old.replicas]
        if not replaced or self.inventory.fits(live.resources, ignoring=held) is not None:
            return
        retired, live.replaces = live.replaces, []
        logger.warning(
            "Service [%s] has no room on this host to run version %s beside %s; stopping %s first",
            live.name,
            live.version.number,
            ", ".join(f"version {old.version.number}" for old in replaced),
            "it" if len(replaced) == 1 else "them",
        )
        for version_id in retired:
            supervisor._background_task(
                supervisor.undeploy(
                    version_id,
                    reason=f"replaced by version {live.version.number} (stopped first: no room for both)",
                )
            )

    async def started(self, replica_id: str, start: Callable[[], Awaitable[ReplicaProcess]]) -> ReplicaProcess:
        """Start a replica with `start()`; its reservation is given back when the process exits (at once if it
        fails to start)."""
        try:
            process = await start()
        except BaseException:
            self.release(replica_id)
            raise
        watcher = asyncio.create_task(self._release_on_exit(replica_id, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return process

    async def _release_on_exit(self, replica_id: str, process: ReplicaProcess) -> None:
        try:
            await process.wait()
        finally:
            self.release(replica_id)

    def release(self, replica_id: str) -> None:
        """Give back what a replica held and let every waiting replica look again."""
        if self.inventory.release(replica_id) is not None:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()
