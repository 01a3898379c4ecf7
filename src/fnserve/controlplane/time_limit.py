"""A service's `time_limit`: when its deployment expires, and the reason it gives when it is torn down then.

The limit runs from the deployment's `deployed_at` in the store, so a restarted server grants no fresh one.
The supervisor keeps the timer; this module only computes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fnserve._units import format_duration
from fnserve.spec import ServiceSpec
from fnserve.store import DeploymentRecord


def expires_at(spec: ServiceSpec, deployment: DeploymentRecord) -> datetime | None:
    """When the deployment is torn down; None without a time limit."""
    if spec.time_limit_s is None:
        return None
    return deployment.deployed_at + timedelta(seconds=spec.time_limit_s)


def time_left_s(expiry: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds until `expiry` (0 once it has passed); None without one."""
    if expiry is None:
        return None
    return max(0.0, (expiry - (now or datetime.now(UTC))).total_seconds())


def expired_reason(spec: ServiceSpec, deployment: DeploymentRecord) -> str:
    """The reason an expired deployment is INACTIVE, e.g. `time limit of 2h reached at 2025-01-31 14:00:00 UTC`."""
    expiry = expires_at(spec, deployment)
    assert expiry is not None
    assert spec.time_limit_s is not None
    return f"time limit of {format_duration(spec.time_limit_s)} reached at {expiry:%Y-%m-%d %H:%M:%S} UTC"
