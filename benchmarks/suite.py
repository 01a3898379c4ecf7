"""Run every target side by side in one process lifetime, so their numbers are comparable.

All targets start first (deploying their services, with timings), then memory is read while they idle,
then the load runs interleaved: for each scenario and concurrency, every target in turn gets a warm-up and
a measured wrk run. Whatever happens, every process started here is stopped before `run_suite` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.probes import request
from benchmarks.procs import Memory, free_port
from benchmarks.scenarios import Scenario
from benchmarks.targets import DeployTiming, RunningTarget, Target, TargetError, launch
from benchmarks.wrk import WrkError, WrkResult, find_wrk, run_wrk


@dataclass(frozen=True, kw_only=True)
class SuiteOptions:
    """What to run. `duration_s` and `warmup_s` are per (target, scenario, concurrency) point; wrk rounds to seconds."""

    targets: list[Target]
    scenarios: list[Scenario]
    concurrencies: list[int]
    duration_s: float
    warmup_s: float
    work_dir: Path
    settle_s: float = 1.0


@dataclass(frozen=True)
class Point:
    """One measured wrk run."""

    target: str
    scenario: str
    concurrency: int
    result: WrkResult


@dataclass(frozen=True)
class TargetSummary:
    """What was measured about a target apart from load: idle memory and deploy timings."""

    target: Target
    memory: Memory
    deploys: dict[str, DeployTiming]


@dataclass
class SuiteResult:
    options: SuiteOptions
    started_at: datetime
    finished_at: datetime | None = None
    targets: list[TargetSummary] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)

    def point(self, target: str, scenario: str, concurrency: int) -> WrkResult | None:
        for point in self.points:
            if (point.target, point.scenario, point.concurrency) == (target, scenario, concurrency):
                return point.result
        return None


def check_answer(running: RunningTarget, scenario: Scenario) -> None:
    """Send the scenario's request once and check the exact answer, so wrk never measures a fast error page."""
    reply = request(
        running.url, scenario.method, scenario.path, body=scenario.body, headers=scenario.headers, timeout_s=5
    )
    if reply is None or reply.status != 200 or reply.body.strip() != scenario.expected_body:
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:200]!r}"
        raise TargetError(
            f"Target {running.target.name!r} answered {scenario.method} {scenario.path} with {got}, "
            f"expected 200 {scenario.expected_body!r}; log {running.log_path}"
        )


def _measure(
    wrk: str, running: RunningTarget, scenario: Scenario, concurrency: int, options: SuiteOptions
) -> WrkResult:
    """A warm-up run (discarded), then the measured run, at the same concurrency."""

    def load(duration_s: float) -> WrkResult:
        return run_wrk(
            wrk,
            url=running.url,
            scenario=scenario,
            connections=concurrency,
            duration_s=duration_s,
            script_dir=options.work_dir,
        )

    if options.warmup_s > 0:
        load(options.warmup_s)
    return load(options.duration_s)


def run_suite(options: SuiteOptions, *, log: Callable[[str], None] = print) -> SuiteResult:
    """Start the targets, deploy, measure memory and load, stop everything; return what was measured.

    Raises:
        WrkError: wrk is not installed or failed.
        TargetError: A target did not start, deploy, or answer correctly (the message names its log).
        WaitTimeout: A bounded wait ran out (the message names what and the log).
    """
    wrk = find_wrk()
    if wrk is None:
        raise WrkError("wrk is not installed; run `benchmarks/setup.sh` (apt-get install -y wrk)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    result = SuiteResult(options=options, started_at=datetime.now(UTC))
    with ExitStack() as stack:
        running: list[RunningTarget] = []
        for target in options.targets:
            log(f"Starting {target.name} ...")
            started = stack.enter_context(launch(target, port=free_port(), work_dir=options.work_dir))
            for scenario in options.scenarios:
                if target.deploy is not None:
                    timing = target.deploy(started, scenario)
                    started.deploys[scenario.name] = timing
                    log(
                        f"  deployed {scenario.service_name!r}: first 200 after {timing.first_response_s:.3f} s, "
                        f"deploy command took {timing.command_s:.3f} s"
                    )
                check_answer(started, scenario)
            running.append(started)

        time.sleep(options.settle_s)  # let start-up garbage and lazy imports settle before reading memory
        for started in running:
            memory = started.memory()
            result.targets.append(TargetSummary(target=started.target, memory=memory, deploys=started.deploys))
            log(f"  {started.target.name}: {memory.process_count} processes, RSS {memory.rss_bytes / 2**20:.1f} MiB")

        for scenario in options.scenarios:
            for concurrency in options.concurrencies:
                for started in running:
                    started.check_alive(f"loading {scenario.name} at concurrency {concurrency}")
                    measured = _measure(wrk, started, scenario, concurrency, options)
                    result.points.append(Point(started.target.name, scenario.name, concurrency, measured))
                    log(
                        f"  {scenario.name} c={concurrency:<3} {started.target.name:<12} "
                        f"{measured.requests_per_s:>10.0f} req/s  p50 {measured.p50_ms:.3f} ms  "
                        f"p99 {measured.p99_ms:.3f} ms  errors {measured.errors}"
                    )
    result.finished_at = datetime.now(UTC)
    return result
