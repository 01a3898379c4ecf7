"""The supervisor's rules for failing replicas, without processes: how an exit is worded, how long to wait
before a restart, and when to stop restarting."""

from __future__ import annotations

import pytest

from fnserve.controlplane.health import CrashLoop, exit_cause, restart_backoff_s
from fnserve.settings import Settings, Timeouts


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (3, "exit code 3"),
        (0, "exit code 0"),
        (-9, "killed by SIGKILL (exit code -9)"),
        (-11, "killed by SIGSEGV (exit code -11)"),
        (None, "exit code unknown"),
    ],
)
def test_exit_cause_names_the_signal(code: int | None, words: str) -> None:
    assert exit_cause(code) == words


def test_restart_backoff_is_immediate_then_doubles_up_to_the_cap() -> None:
    assert [restart_backoff_s(n, 0.5, 3.0) for n in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_crash_loop_gives_up_after_max_failures_in_a_row() -> None:
    settings = Settings(max_replica_failures=4, timeouts=Timeouts(restart_backoff_s=0.5, replica_stable_s=30))
    loop = CrashLoop()
    assert [loop.record(1.0, settings) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert loop.record(0.0, settings) is None  # a failed start counts too
    assert loop.failures == 4


def test_crash_loop_starts_over_after_a_replica_stayed_up() -> None:
    settings = Settings(max_replica_failures=3, timeouts=Timeouts(restart_backoff_s=0.5, replica_stable_s=30))
    loop = CrashLoop()
    assert [loop.record(1.0, settings) for _ in range(2)] == [0.0, 0.5]
    assert loop.record(31.0, settings) == 0.0  # it ran a while: not part of a loop
    assert loop.failures == 1
