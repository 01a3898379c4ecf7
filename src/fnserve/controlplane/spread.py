"""Spreading a scale-up's work: how many calls one ready replica of an autoscaled deployment takes now. No I/O.

A ready replica accepts up to `max_request_concurrency` calls (8 for sync code). When the load asks for more
replicas, the ready one would take all of that work before the new ones exist, and they would start idle: 8 queued
slow jobs scaled a service to 3 replicas, and all 8 ran on the first. So while a scale-up can bring replicas, a
ready replica takes only its share, `ceil(target_ongoing_requests)`; calls and jobs beyond it wait in the
deployment's line (bounded by `max_queued_requests` and the invocation timeout) and go to the new replicas as they
become ready. The hold is bounded in time too: a call waits at most `max_wait_s` for replicas before it takes any
free slot, and nothing waits when no replica can come within that wait: the deployment runs its maximum and every
replica is ready, a replica waits for resources (it may wait for ever), or the upscale delay is longer than the wait.
Deployments with a fixed replica count never hold: their replicas are all there, and the picker spreads evenly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Fleet:
    """An autoscaled deployment's replicas and scaling policy, as the slot limit needs them."""

    ready: int
    starting: int  # started (placed), not ready yet
    waiting_for_resources: bool  # some replica is not placed yet: it may never be
    max_replicas: int
    target_per_replica: float  # `target_ongoing_requests`
    upscale_delay_s: float


def replicas_coming(fleet: Fleet, max_wait_s: float) -> bool:
    """Whether a scale-up is bringing replicas, or would start one within `max_wait_s` of the load asking."""
    if fleet.waiting_for_resources:
        return False
    if fleet.starting:
        return True
    return fleet.ready < fleet.max_replicas and fleet.upscale_delay_s < max_wait_s


def slot_limit(concurrency: int, fleet: Fleet | None, *, waited_s: float, max_wait_s: float) -> int:
    """Calls one ready replica may have in flight now, for a call (or job) that has waited `waited_s`.

    `fleet` is None for a deployment with a fixed replica count: its replicas take `concurrency` calls each.

    Example:
        >>> fleet = Fleet(ready=1, starting=0, waiting_for_resources=False, max_replicas=3, target_per_replica=2.0,
        ...               upscale_delay_s=1.0)
        >>> slot_limit(8, fleet, waited_s=0.0, max_wait_s=10.0), slot_limit(8, fleet, waited_s=10.0, max_wait_s=10.0)
        (2, 8)
    """
    if fleet is None or waited_s >= max_wait_s or not replicas_coming(fleet, max_wait_s - waited_s):
        return concurrency
    return min(concurrency, math.ceil(fleet.target_per_replica))
