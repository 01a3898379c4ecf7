"""The autoscaler: each deployment's replicas follow its load, within its instance bounds.

A deployment's load is its calls in flight, the calls waiting for a slot, and the jobs queued for it.
Every tick it wants `ceil(load / target_ongoing_requests)` replicas, kept between `min_instances` and
`max_instances`. A change must hold for the upscale (or downscale) delay before it is applied, so a burst
shorter than that does not make replicas flap; scaling up from zero is at once, since a caller waits.
Deployments whose bounds are equal are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fnserve.controlplane.supervisor import LiveDeployment, Supervisor
from fnserve.spec import Autoscaling
from fnserve.store import DeploymentState

logger = logging.getLogger("fnserve.autoscaler")

TICK_S = 0.1


@dataclass
class _Pending:
    """A change of replica count the load asks for, and since when it has asked."""

    wanted: int
    since: float


def load_of(live: LiveDeployment, queued_jobs: int) -> int:
    return live.in_flight + len(live.waiting) + queued_jobs


def wanted_replicas(load: int, policy: Autoscaling, minimum: int, maximum: int) -> int:
    """Replicas for a load: enough that each has about `target_ongoing_requests`, within the bounds.

    Example:
        >>> wanted_replicas(7, Autoscaling(max_replicas=8, target_ongoing_requests=2), 1, 8)
        4
    """
    return max(minimum, min(math.ceil(load / policy.target_ongoing_requests), maximum))


class Autoscaler:
    def __init__(self, supervisor: Supervisor, queued_jobs: Callable[[str], int]) -> None:
        self.supervisor = supervisor
        self.queued_jobs = queued_jobs  # jobs queued for a version (by version id)
        self._pending: dict[str, _Pending] = {}  # by version id
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            autoscaled = False
            for live in list(self.supervisor.deployments.values()):
                try:
                    autoscaled = self.tick(live, now) or autoscaled
                except Exception:
                    logger.exception("Autoscaling %s failed", live.label)
            # Replicas started at request time are the ones a caller waits for: have a worker ready for them.
            self.supervisor.backend.keep_warm(self.supervisor.settings.warm_workers if autoscaled else 0)
            for version_id in set(self._pending) - set(self.supervisor.deployments):
                del self._pending[version_id]

    def tick(self, live: LiveDeployment, now: float) -> bool:
        """Move `live` toward the replicas its load asks for; False when it does not autoscale."""
        bounds = live.deployment.spec
        version_id = live.version.version_id
        if bounds.min_instances == bounds.max_instances or live.stopping or live.state is DeploymentState.error:
            self._pending.pop(version_id, None)
            return False
        policy = live.spec.autoscaling or Autoscaling(max_replicas=bounds.max_instances)
        load = load_of(live, self.queued_jobs(version_id))
        wanted = wanted_replicas(load, policy, bounds.min_instances, bounds.max_instances)
        if wanted == live.target:
            self._pending.pop(version_id, None)
            return True
        pending = self._pending.get(version_id)
        if pending is None or (pending.wanted > live.target) != (wanted > live.target):
            pending = self._pending[version_id] = _Pending(wanted, now)
        # Up: to the most asked for while the delay ran; down: to the least the load allows.
        pending.wanted = max(pending.wanted, wanted) if wanted > live.target else wanted
        delay_s = policy.upscale_delay_s if wanted > live.target else policy.downscale_delay_s
        if live.target == 0 or now - pending.since >= delay_s:
            del self._pending[version_id]
            logger.info(
                "Scaling %s from %d to %d replica(s) (load %d, target %g per replica)",
                live.label,
                live.target,
                pending.wanted,
                load,
                policy.target_ongoing_requests,
            )
            self.supervisor.scale_soon(live, pending.wanted)
        return True
