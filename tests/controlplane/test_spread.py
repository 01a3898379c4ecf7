"""A scale-up spreads the work: while it brings replicas, a ready replica takes only its share of the target, and
the calls and jobs beyond it wait for the new replicas. The policy (controlplane/spread.py) without a server, then
over real processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from spread import spread

import fnserve as fs
from fnserve.controlplane.spread import Fleet, slot_limit
from fnserve.testing import run_server, wait_until

WAIT_S = 10.0


def fleet(
    *,
    ready: int = 1,
    starting: int = 0,
    waiting_for_resources: bool = False,
    max_replicas: int = 3,
    target: float = 2.0,
    upscale_delay_s: float = 1.0,
) -> Fleet:
    return Fleet(ready, starting, waiting_for_resources, max_replicas, target, upscale_delay_s)


@pytest.mark.parametrize(
    ("scaling", "waited_s", "limit"),
    [
        (None, 0.0, 8),  # a fixed replica count: every slot
        (fleet(), 0.0, 2),  # room for more replicas: the target's share, the rest waits for them
        (fleet(ready=1, starting=2), 0.0, 2),  # replicas on their way
        (fleet(ready=2, starting=1, max_replicas=3), 0.0, 2),  # the last one on its way
        (fleet(ready=3, max_replicas=3), 0.0, 8),  # all there: nothing to wait for
        (fleet(target=2.5), 0.0, 3),  # a share is a whole number of calls
        (fleet(target=0.5), 0.0, 1),
        (fleet(target=20), 0.0, 8),  # never more than the replica takes
        (fleet(), WAIT_S, 8),  # waited long enough: any free slot
        (fleet(starting=1, waiting_for_resources=True), 0.0, 8),  # a replica that may never fit is not waited for
        (fleet(upscale_delay_s=60), 0.0, 8),  # no scale-up would start within the wait
        (fleet(upscale_delay_s=5), 6.0, 8),  # nor within what is left of it
        (fleet(upscale_delay_s=5, starting=1), 6.0, 2),  # but one is starting
    ],
)
def test_slot_limit_holds_calls_beyond_the_target_only_while_replicas_can_come(
    scaling: Fleet | None, waited_s: float, limit: int
) -> None:
    assert slot_limit(8, scaling, waited_s=waited_s, max_wait_s=WAIT_S) == limit


@pytest.fixture
def spread_url(tmp_path: Path) -> Iterator[str]:
    """A server whose scale-up holds calls long enough for replicas that start slowly on a busy machine."""
    with run_server(home=tmp_path / "home", graceful_shutdown_s=2, scale_up_wait_s=40) as url:
        with fs.deploy(spread, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


def in_flight(client: fs.Client) -> list[int]:
    replicas = client.get_service("spread")["replicas"]
    return sorted(replica["in_flight"] for replica in replicas if replica["state"] == "READY")


def wait_for_spread(client: fs.Client, expected: list[int]) -> None:
    try:
        wait_until(lambda: in_flight(client) == expected, timeout_s=25, what=f"calls in flight per replica {expected}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; in flight per ready replica: {in_flight(client)}") from None


def test_queued_slow_jobs_spread_over_the_replicas_a_scale_up_brings(spread_url: str, tmp_path: Path) -> None:
    """
    1. One replica (autoscaling up to 3, a target of 2 calls each, 8 slots per replica) gets 9 jobs that hold.
    2. It takes its share, 2; the other 7 wait while the deployment scales to 3 replicas, and go to the new ones
       as they become ready; once all 3 are there, the last 3 take the free slots: 3 jobs on each replica.
    3. Released, every job completes, 3 on each replica's pid.
    """
    release = tmp_path / "release"
    with fs.get_deployment("spread", url=spread_url) as deployment, fs.Client(spread_url) as client:
        jobs = [deployment.hold.submit(release=str(release)) for _ in range(9)]

        wait_for_spread(client, [3, 3, 3])
        release.touch()

        pids = Counter(job.result(timeout_s=20) for job in jobs)
    assert sorted(pids.values()) == [3, 3, 3]


def test_concurrent_slow_calls_spread_over_the_replicas_a_scale_up_brings(spread_url: str, tmp_path: Path) -> None:
    release = tmp_path / "release"
    with fs.Client(spread_url) as client, ThreadPoolExecutor(9) as pool:
        calls = [
            pool.submit(httpx.post, f"{spread_url}/spread/hold", json={"release": str(release)}, timeout=30)
            for _ in range(9)
        ]

        wait_for_spread(client, [3, 3, 3])
        release.touch()

        pids = Counter(call.result().json() for call in calls)
    assert sorted(pids.values()) == [3, 3, 3]
