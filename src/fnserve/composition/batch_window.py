"""When a batch starts: no I/O, no clock of its own. `Batcher` (batching.py) asks before each wait.

A batch starts when `max_batch_size` calls wait, or once `batch_wait_timeout_s` has passed since the first of them
arrived, whichever comes first; so a lone call waits at most `batch_wait_timeout_s`, and calls that queued up while
the previous batch ran (their first arrived long ago) start at once.
"""

from __future__ import annotations


def wait_before_batch(
    waiting: int, *, first_arrived_at: float, now: float, max_batch_size: int, batch_wait_timeout_s: float
) -> float:
    """Seconds to wait for more calls before starting a batch of the `waiting` ones; 0.0 means start now.

    Example:
        >>> wait_before_batch(3, first_arrived_at=10.0, now=10.004, max_batch_size=32, batch_wait_timeout_s=0.01)
        0.006
    """
    if waiting >= max_batch_size:
        return 0.0
    remaining = first_arrived_at + batch_wait_timeout_s - now
    return round(remaining, 9) if remaining > 0 else 0.0
