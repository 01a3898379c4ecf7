"""The environments benchmark's report, from known numbers (the benchmark itself builds for minutes: `make bench`)."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.envs import Results, report


def test_report_gives_the_ratio_side_by_side_and_the_goals() -> None:
    results = Results(
        fnserve_cold_s=[4.0, 5.0, 6.0],
        pip_cold_s=[30.0, 25.0, 35.0],
        fnserve_warm_s=[1.0],
        pip_warm_s=[20.0],
        cached_active_s=[0.4, 0.5, 0.6],
        cached_active_importing_s=[3.0, 3.5, 4.0],
        model_first_prediction_s=[9.0],
    )

    text = report(results, command="benchmarks/envs.py", started_at=datetime(2026, 12, 6, tzinfo=UTC))

    assert "**met** (6.0×)" in text
    assert "| cold caches | 5.00 s | 30.00 s | 6.0× | 3 |" in text
    assert "| warm caches | 1.00 s | 20.00 s | 20.0× | 1 |" in text
    assert "0.50 s" in text
    assert "| < 1 s | yes |" in text
    assert "deploy-model → first prediction" in text
