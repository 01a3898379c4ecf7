"""The handle benchmark's report, from made-up measures: the table and what it says of the goals."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.composition import Latencies, Measured, report


def measured(framework: str, hop_ms: float, local_ms: float, via_ms: float) -> Measured:
    return Measured(
        framework,
        in_replica=Latencies([hop_ms] * 10),
        direct=Latencies([local_ms] * 10),
        local=Latencies([local_ms] * 10),
        via=Latencies([via_ms] * 10),
    )


def test_report_states_both_goals() -> None:
    text = report(
        [measured("fnserve", 0.2, 1.0, 1.25), measured("Ray Serve 2.60.0", 3.0, 6.0, 13.0)],
        command="python benchmarks/composition.py",
        started_at=datetime(2026, 12, 6, tzinfo=UTC),
        ray_note=None,
    )
    assert "| fnserve | 0.200 |" in text
    assert "0.200 ms in the replica, 0.250 ms added over HTTP; goal < 0.3 ms: met" in text
    assert "(15.0× fnserve's), 7.000 ms added over HTTP (28.0× fnserve's); goal ≥ 10×: met" in text


def test_report_without_ray_says_why() -> None:
    text = report(
        [measured("fnserve", 0.5, 1.0, 1.6)],
        command="python benchmarks/composition.py --no-ray",
        started_at=datetime(2026, 12, 6, tzinfo=UTC),
        ray_note="skipped (--no-ray)",
    )
    assert "goal < 0.3 ms: not met" in text
    assert "- Ray Serve: skipped (--no-ray)" in text
