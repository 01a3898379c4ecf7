"""What the supervisor does about unhealthy and dying replicas: why one is replaced, how long to wait before
starting the next, and when to give up and put the deployment in ERROR rather than restart it forever.

The checks themselves travel over the replica protocol (`ReplicaConnection.ping`); a service's own
`check_health()` runs in its replica (`fnserve.runtime.health`).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from fnserve.settings import Settings


def exit_cause(exit_code: int | None) -> str:
    """How a process ended, in words.

    Example:
        >>> exit_cause(-9), exit_cause(3)
        ('killed by SIGKILL (exit code -9)', 'exit code 3')
    """
    if exit_code is None:
        return "exit code unknown"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"killed by {name} (exit code {exit_code})"
    return f"exit code {exit_code}"


def not_answering(timeout_s: float) -> str:
    return f"did not answer a health check within {timeout_s:g} s"


def failing_checks(count: int, message: str | None) -> str:
    return f"failed {count} health checks in a row: {message or 'no reason given'}"


@dataclass
class CrashLoop:
    """Counts the replicas of one deployment that failed in a row: those that did not start, died soon after they
    were ready, or were replaced for their health. It spaces out their restarts, and stops restarting a replica that
    keeps failing (the deployment goes to ERROR rather than flap).

    A replica that stayed ready for `Timeouts.replica_stable_s` before it died starts the count again.

    Example:
        >>> loop, settings = CrashLoop(), Settings(max_replica_failures=3)
        >>> [loop.record(1.0, settings) for _ in range(3)]
        [0.0, 0.5, None]
    """

    failures: int = 0

    def record(self, uptime_s: float, settings: Settings) -> float | None:
        """A replica failed after `uptime_s` ready (0: it never was). Returns the seconds to wait before starting its
        replacement (the first at once, then doubling), or None: it keeps failing, stop restarting."""
        timeouts = settings.timeouts
        if uptime_s >= timeouts.replica_stable_s:
            self.failures = 0
        self.failures += 1
        if self.failures >= settings.max_replica_failures:
            return None
        return restart_backoff_s(self.failures, timeouts.restart_backoff_s, timeouts.max_restart_backoff_s)


def restart_backoff_s(failures: int, backoff_s: float, max_backoff_s: float) -> float:
    """The wait before a new start after `failures` failures in a row: none after the first, then `backoff_s`,
    doubling up to `max_backoff_s`."""
    if failures <= 1:
        return 0.0
    return float(min(backoff_s * 2 ** (failures - 2), max_backoff_s))
