"""Run every target side by side in one process lifetime, so their numbers are comparable.

Peers are installed first (or their venvs reused). Then all targets start, timed from process start to their
first good answer, platforms deploy their services (timed from the deploy command to the first 200), and every
scenario's answer is checked once (those with large bodies only after idle memory is read: the buffers they leave
are not an idle server's). Then idle CPU and memory are read while they all idle, and the load runs
interleaved: for each scenario and concurrency, every target in turn gets a warm-up and a measured wrk run, with
the CPU time of its process tree read around the measured run and its memory right after the highest
concurrency. Streaming scenarios also get a time-to-first-chunk probe per target.

A peer that fails to install, start, answer or survive the load is recorded with the reason and left out of the
rest of the run; a failure of the bare app or fnserve stops the run. Whatever happens, every process started
here is stopped before `run_suite` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.peer_envs import PeerInstallError
from benchmarks.probes import FirstChunk, ProbeError, request, time_first_chunk
from benchmarks.procs import CpuTime, Memory, WaitTimeout, cpu_between, cpu_sample, free_port
from benchmarks.scenarios import Scenario
from benchmarks.targets import DeployTiming, RunningTarget, Target, TargetError, launch
from benchmarks.wrk import WrkError, WrkResult, find_wrk, run_wrk


@dataclass(frozen=True, kw_only=True)
class SuiteOptions:
    """What to run. `duration_s` and `warmup_s` are per (target, scenario, concurrency) point; wrk rounds to seconds.

    `settle_s` is the idle time after the last deploy over which idle CPU is read, before memory;
    `first_chunk_samples` the sequential requests the time-to-first-chunk probe sends per streaming scenario.
    """

    targets: list[Target]
    scenarios: list[Scenario]
    concurrencies: list[int]
    duration_s: float
    warmup_s: float
    work_dir: Path
    settle_s: float = 1.0
    first_chunk_samples: int = 100


@dataclass(frozen=True)
class Point:
    """One measured wrk run, and the CPU time the target's process tree spent during it."""

    target: str
    scenario: str
    concurrency: int
    result: WrkResult
    cpu: CpuTime

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.cpu.total_s * 1000 / self.result.requests if self.result.requests else None


@dataclass(frozen=True)
class TargetSummary:
    """What was measured about a target apart from load: start, deploys, idle CPU and memory, versions.

    Attributes:
        started_s: Process start to the first good answer to its `ready` request (fnserve: `/-/healthz`).
        idle_cpu_percent: CPU time of its process tree while idle after deploy, in % of one core.
        versions: For peers, the versions of their packages in their venv.
    """

    target: Target
    started_s: float
    memory: Memory
    idle_cpu_percent: float
    deploys: dict[str, DeployTiming]
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class SuiteResult:
    """Everything a run measured. `failures` maps a peer that dropped out to why; `loaded_memory` is each target's
    memory right after its measured run at the highest concurrency (the largest over scenarios)."""

    options: SuiteOptions
    started_at: datetime
    finished_at: datetime | None = None
    targets: list[TargetSummary] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    first_chunks: dict[tuple[str, str], FirstChunk] = field(default_factory=dict)
    loaded_memory: dict[str, Memory] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def point(self, target: str, scenario: str, concurrency: int) -> WrkResult | None:
        found = self.measured(target, scenario, concurrency)
        return found.result if found else None

    def measured(self, target: str, scenario: str, concurrency: int) -> Point | None:
        for point in self.points:
            if (point.target, point.scenario, point.concurrency) == (target, scenario, concurrency):
                return point
        return None

    def summary(self, target: str) -> TargetSummary | None:
        return next((summary for summary in self.targets if summary.target.name == target), None)


def check_answer(running: RunningTarget, scenario: Scenario) -> None:
    """Send the scenario's request once and check the exact answer, so wrk never measures a fast error page."""
    reply = request(
        running.url, scenario.method, scenario.path, body=scenario.body, headers=scenario.headers, timeout_s=5
    )
    if reply is None or reply.status != 200 or not scenario.expects(running.target.name, reply.body):
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:200]!r}"
        expected = scenario.expected_by_target.get(running.target.name, scenario.expected_body)
        raise TargetError(
            f"Target {running.target.name!r} answered {scenario.method} {scenario.path} with {got}, "
            f"expected 200 {expected[:200]!r}; log {running.log_path}"
        )


def _start(target: Target, options: SuiteOptions, log: Callable[[str], None]) -> tuple[RunningTarget, ExitStack]:
    """Start a target, deploy each service its scenarios need once, and check every scenario's answer but those with
    large bodies, which are checked once idle memory was read: a 1 MiB upload leaves buffers a process keeps a while.

    Returns the running target and the stack that stops it; on any failure it is already stopped.
    """
    stops = ExitStack()
    try:
        running = stops.enter_context(launch(target, port=free_port(), work_dir=options.work_dir))
        log(f"  {target.name}: up {running.started_s:.3f} s after its process started")
        for scenario in options.scenarios:
            if target.deploy is not None and scenario.service_name not in running.deploys:
                timing = target.deploy(running, scenario)
                running.deploys[scenario.service_name] = timing
                log(
                    f"  deployed {scenario.service_name!r}: first 200 after {timing.first_response_s:.3f} s, "
                    f"deploy command took {timing.command_s:.3f} s"
                )
            if not scenario.large_bodies:  # those after idle memory is read (run_suite)
                check_answer(running, scenario)
    except BaseException:
        stops.close()
        raise
    return running, stops


def _reason(exc: BaseException) -> str:
    """The first line of an error, for the one-line "failed: ..." of a peer."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _measure(
    wrk: str, running: RunningTarget, scenario: Scenario, concurrency: int, options: SuiteOptions
) -> tuple[WrkResult, CpuTime]:
    """A warm-up run (discarded), then the measured run at the same concurrency, with the tree's CPU time around it."""

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
    before = cpu_sample(running.process.pid)
    measured = load(options.duration_s)
    return measured, cpu_between(before, cpu_sample(running.process.pid))


def run_suite(options: SuiteOptions, *, log: Callable[[str], None] = print) -> SuiteResult:
    """Install and start the targets, deploy, measure idle, load and memory, stop everything; return what was measured.

    Raises:
        WrkError: wrk is not installed or failed on the bare app or fnserve.
        TargetError: The bare app or fnserve did not start, deploy, or answer correctly (the message names its log).
        WaitTimeout: A bounded wait ran out (the message names what and the log).
    """
    wrk = find_wrk()
    if wrk is None:
        raise WrkError("wrk is not installed; run `benchmarks/setup.sh` (apt-get install -y wrk)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    result = SuiteResult(options=options, started_at=datetime.now(UTC))
    live: list[RunningTarget] = []

    def drop(running: RunningTarget | Target, doing: str, exc: BaseException) -> None:
        """A peer failed: record why and leave it out from now on. Anything else failing stops the run."""
        target = running.target if isinstance(running, RunningTarget) else running
        if not target.peer:
            raise exc
        result.failures[target.name] = f"{doing}: {_reason(exc)}"
        log(f"  {target.name} FAILED {doing}: {exc}")
        if isinstance(running, RunningTarget) and running in live:
            live.remove(running)

    with ExitStack() as stack:
        versions: dict[str, dict[str, str]] = {}
        for target in options.targets:
            if target.install is not None:
                log(f"Installing {target.name} (or reusing its venv) ...")
                try:
                    versions[target.name] = target.install(options.work_dir)
                except PeerInstallError as exc:
                    drop(target, "install failed", exc)
                    continue
            log(f"Starting {target.name} ...")
            try:
                running, stops = _start(target, options, log)
            except (TargetError, WaitTimeout) as exc:
                drop(target, "start failed", exc)
                continue
            stack.enter_context(stops)
            live.append(running)

        # Idle: CPU over the settle time (start-up garbage and lazy imports settle too), then memory.
        before = {running.target.name: cpu_sample(running.process.pid) for running in live}
        time.sleep(options.settle_s)
        for running in live:
            idle = cpu_between(before[running.target.name], cpu_sample(running.process.pid))
            memory = running.memory()
            summary = TargetSummary(
                target=running.target,
                started_s=running.started_s,
                memory=memory,
                idle_cpu_percent=100 * idle.total_s / options.settle_s if options.settle_s > 0 else 0.0,
                deploys=running.deploys,
                versions=versions.get(running.target.name, {}),
            )
            result.targets.append(summary)
            log(
                f"  {running.target.name}: {memory.process_count} processes, RSS {memory.rss_bytes / 2**20:.1f} MiB, "
                f"idle CPU {summary.idle_cpu_percent:.1f}%"
            )
        for running in list(live):
            for scenario in options.scenarios:
                if scenario.large_bodies:
                    try:
                        check_answer(running, scenario)
                    except TargetError as exc:
                        drop(running, f"checking {scenario.name}'s answer", exc)
                        break

        top = max(options.concurrencies)
        for scenario in options.scenarios:
            if scenario.chunks and options.first_chunk_samples > 0:
                for running in list(live):
                    try:
                        first = time_first_chunk(
                            running.url,
                            scenario.method,
                            scenario.path,
                            body=scenario.body,
                            headers=scenario.headers,
                            samples=options.first_chunk_samples,
                        )
                    except ProbeError as exc:
                        drop(running, f"probing the first chunk of {scenario.name}", TargetError(str(exc)))
                        continue
                    result.first_chunks[(running.target.name, scenario.name)] = first
                    log(f"  {scenario.name} first chunk {running.target.name:<12} p50 {first.p50_ms:.3f} ms")
            for concurrency in scenario.loaded_at(options.concurrencies):
                for running in list(live):
                    doing = f"loading {scenario.name} at concurrency {concurrency}"
                    try:
                        running.check_alive(doing)
                        measured, cpu = _measure(wrk, running, scenario, concurrency, options)
                    except (TargetError, WrkError) as exc:
                        drop(running, doing, exc)
                        continue
                    point = Point(running.target.name, scenario.name, concurrency, measured, cpu)
                    result.points.append(point)
                    if concurrency == top:
                        memory = running.memory()
                        held = result.loaded_memory.get(running.target.name)
                        if held is None or memory.rss_bytes > held.rss_bytes:
                            result.loaded_memory[running.target.name] = memory
                    log(
                        f"  {scenario.name} c={concurrency:<3} {running.target.name:<12} "
                        f"{measured.requests_per_s:>10.0f} req/s  p50 {measured.p50_ms:.3f} ms  "
                        f"p99 {measured.p99_ms:.3f} ms  CPU {point.cpu_ms_per_request or 0:.3f} ms/req  "
                        f"errors {measured.errors}"
                    )
    result.finished_at = datetime.now(UTC)
    return result
