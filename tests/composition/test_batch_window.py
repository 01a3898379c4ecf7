"""When a batch starts (composition/batch_window.py), decided without a server or a clock."""

from __future__ import annotations

import pytest

from fnserve.composition.batch_window import wait_before_batch


@pytest.mark.parametrize(
    ("waiting", "now", "expected"),
    [
        (1, 10.0, 0.01),  # a lone call just arrived: it waits the whole window
        (5, 10.004, 0.006),  # the window runs from the first call's arrival, not the last
        (32, 10.0, 0.0),  # a full batch starts at once
        (40, 10.0, 0.0),  # more than a batch waits: the first 32 start at once
        (3, 10.01, 0.0),  # the window is over
        (3, 12.0, 0.0),  # calls that queued while the previous batch ran start at once
    ],
)
def test_a_batch_starts_when_full_or_when_its_first_call_waited_the_window(
    waiting: int, now: float, expected: float
) -> None:
    wait = wait_before_batch(waiting, first_arrived_at=10.0, now=now, max_batch_size=32, batch_wait_timeout_s=0.01)
    assert wait == pytest.approx(expected)


def test_a_zero_window_never_waits() -> None:
    assert wait_before_batch(1, first_arrived_at=10.0, now=10.0, max_batch_size=32, batch_wait_timeout_s=0.0) == 0.0
