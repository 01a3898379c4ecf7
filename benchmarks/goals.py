"""The performance goals the issue set for fnserve, checked against one run's numbers (RESULTS.md "Goals").

Each goal reads what it needs from a `SuiteResult` for one fnserve target and says what it measured and
whether that passes; a goal whose numbers the run lacks (a target left out, or a peer that failed) is "not
measured", never passed. Ratios are taken within the run, so machine noise moves both sides alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.suite import SuiteResult
from benchmarks.targets import Target
from benchmarks.wrk import WrkResult

MIB = 2**20
MEMORY_GOAL_BYTES = 120 * 1000**2  # the 120 MB, in decimal megabytes (114.4 MiB): the stricter reading


@dataclass(frozen=True)
class Measured:
    """What a goal measured, in words, and whether it passes."""

    text: str
    passed: bool


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One goal: `measure(result, target)` returns what was measured, or a reason it was not (a str)."""

    description: str
    measure: Callable[[SuiteResult, str], Measured | str]
    applies: Callable[[Target], bool] = lambda target: True


@dataclass(frozen=True)
class GoalOutcome:
    goal: Goal
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run


def _own(result: SuiteResult, target: str, scenario: str, concurrency: int) -> WrkResult | Measured | str:
    """The fnserve target's point; errors during its load fail the goal, a point not run is "not measured"."""
    point = result.point(target, scenario, concurrency)
    if point is None:
        return f"{target} did not run {scenario} at concurrency {concurrency}"
    if point.errors:
        return Measured(f"{point.errors} errors during the load", False)
    return point


def _other(result: SuiteResult, target: str, scenario: str, concurrency: int) -> WrkResult | str:
    """A compared target's clean point, or why there is none: it failed, did not run, or had errors."""
    if target in result.failures:
        return f"{target} failed ({result.failures[target]})"
    point = result.point(target, scenario, concurrency)
    if point is None:
        return f"{target} did not run {scenario} at concurrency {concurrency}"
    if point.errors or point.requests_per_s <= 0:
        return f"{target} had {point.errors} errors and {point.requests_per_s:,.0f} req/s"
    return point


def _throughput_ratio(
    other: str, minimum: float, show: Callable[[float], str], scenario: str = "noop"
) -> Callable[..., Measured | str]:
    def measure(result: SuiteResult, target: str) -> Measured | str:
        mine, theirs = _own(result, target, scenario, 16), _other(result, other, scenario, 16)
        if not isinstance(mine, WrkResult):
            return mine
        if not isinstance(theirs, WrkResult):
            return theirs
        ratio = mine.requests_per_s / theirs.requests_per_s
        text = f"{show(ratio)} ({mine.requests_per_s:,.0f} vs {theirs.requests_per_s:,.0f} req/s)"
        return Measured(text, ratio >= minimum)

    return measure


def _p50_at_1(result: SuiteResult, target: str) -> Measured | str:
    point = _own(result, target, "noop", 1)
    if not isinstance(point, WrkResult):
        return point
    return Measured(f"{point.p50_ms:.3f} ms", point.p50_ms < 0.5)


def _tail_at_64(result: SuiteResult, target: str) -> Measured | str:
    point = _own(result, target, "noop", 64)
    if not isinstance(point, WrkResult):
        return point
    ratio = point.p99_ms / point.p50_ms if point.p50_ms > 0 else float("inf")
    return Measured(f"p99 {point.p99_ms:.2f} ms = {ratio:.1f}× p50 {point.p50_ms:.2f} ms", ratio < 4)


def _idle_memory(result: SuiteResult, target: str) -> Measured | str:
    summary = result.summary(target)
    if summary is None:
        return f"{target} did not run"
    rss = summary.memory.rss_bytes
    text = f"{rss / 1000**2:.1f} MB = {rss / MIB:.1f} MiB RSS ({summary.memory.process_count} processes)"
    return Measured(text, rss < MEMORY_GOAL_BYTES)


def _deploy_time(result: SuiteResult, target: str) -> Measured | str:
    summary = result.summary(target)
    if summary is None or not summary.deploys:
        return f"{target} deployed nothing"
    slowest = max(timing.first_response_s for timing in summary.deploys.values())
    return Measured(f"{slowest:.3f} s", slowest < 1.0)


GOALS = (
    Goal(
        description="No-op throughput at concurrency 16 ≥ 50% of the bare app's",
        measure=_throughput_ratio("bare", 0.5, lambda ratio: f"{ratio:.0%} of bare"),
    ),
    Goal(
        description="No-op throughput at concurrency 16 ≥ 8× LitServe's (its default settings)",
        measure=_throughput_ratio("litserve", 8.0, lambda ratio: f"{ratio:.1f}× LitServe"),
    ),
    Goal(
        description="No-op throughput at concurrency 16 ≥ 8× LitServe's with `fast_queue=True`",
        measure=_throughput_ratio("litserve-fastq", 8.0, lambda ratio: f"{ratio:.1f}× LitServe (fast queue)"),
    ),
    Goal(
        description="1 MiB upload (multipart) throughput at concurrency 16 ≥ 80% of the bare app's",
        measure=_throughput_ratio("bare", 0.8, lambda ratio: f"{ratio:.0%} of bare", scenario="upload"),
    ),
    Goal(
        description="1 MiB binary answer throughput at concurrency 16 ≥ 80% of the bare app's",
        measure=_throughput_ratio("bare", 0.8, lambda ratio: f"{ratio:.0%} of bare", scenario="download"),
    ),
    Goal(description="No-op p50 at concurrency 1 < 0.5 ms", measure=_p50_at_1),
    Goal(description="No-op p99 at concurrency 64 < 4× its p50", measure=_tail_at_64),
    Goal(
        description="Server plus one idle replica < 120 MB RSS",
        measure=_idle_memory,
        applies=lambda target: target.replicas == 1,
    ),
    Goal(description="Deploy to first response < 1 s", measure=_deploy_time),
)


def evaluate_goals(result: SuiteResult) -> list[GoalOutcome]:
    """Every goal for every fnserve target of the run it applies to."""
    outcomes = []
    for goal in GOALS:
        for target in result.options.targets:
            if not target.goals_apply or not goal.applies(target):
                continue
            if target.name in result.failures:
                outcomes.append(GoalOutcome(goal, target.name, f"failed: {result.failures[target.name]}", False))
                continue
            measured = goal.measure(result, target.name)
            if isinstance(measured, str):
                outcomes.append(GoalOutcome(goal, target.name, measured, None))
            else:
                outcomes.append(GoalOutcome(goal, target.name, measured.text, measured.passed))
    return outcomes
