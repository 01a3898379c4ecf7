"""Turn a `SuiteResult` into Markdown: the tables printed after a run, the goals, and `RESULTS.md`.

`RESULTS.md` is rewritten on every full run down to `NOTES_MARKER`; the hand-written notes below it are kept.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from benchmarks.suite import SuiteResult
from benchmarks.targets import REPO_ROOT, Target
from benchmarks.wrk import WrkResult, threads_for, wrk_version

NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; run.py keeps it when it rewrites this file -->"
)
DEFAULT_NOTES = "## Notes\n\n_Observations, caveats and explanations of the numbers above, written by hand._\n"
VERSIONED_PACKAGES = ("fnserve", "uvicorn", "starlette", "uvloop", "httptools", "orjson")


@dataclass(frozen=True)
class Environment:
    """The machine and software a run measured."""

    cpu_count: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    wrk: str
    commit: str
    versions: dict[str, str]


def _first_value(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "uncommitted"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_environment(wrk: str | None) -> Environment:
    mem_kib = (_first_value("/proc/meminfo", "MemTotal") or "0 kB").split()[0]
    return Environment(
        cpu_count=os.cpu_count() or 0,
        cpu_model=_first_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        memory_gib=int(mem_kib) / 2**20,
        kernel=f"{platform.system()} {platform.release()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
        wrk=wrk_version(wrk) if wrk else "not installed",
        commit=_commit(),
        versions={package: _version(package) for package in VERSIONED_PACKAGES},
    )


# --- goals -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Goal:
    """A target the issue set for fnserve, measured against the baseline at one scenario and concurrency."""

    description: str
    scenario: str
    concurrency: int
    value: Callable[[WrkResult, WrkResult], float]  # (target, baseline) -> the measured quantity
    passes: Callable[[float], bool]
    show: Callable[[float], str]


GOALS = (
    Goal(
        description="Gateway throughput at concurrency 16 ≥ 50% of the bare app's",
        scenario="noop",
        concurrency=16,
        value=lambda target, base: target.requests_per_s / base.requests_per_s,
        passes=lambda ratio: ratio >= 0.5,
        show=lambda ratio: f"{ratio:.0%} of bare",
    ),
    Goal(
        description="Added p50 latency at concurrency 1 < 1 ms",
        scenario="noop",
        concurrency=1,
        value=lambda target, base: target.p50_ms - base.p50_ms,
        passes=lambda added_ms: added_ms < 1.0,
        show=lambda added_ms: f"{added_ms:+.3f} ms",
    ),
)


@dataclass(frozen=True)
class GoalOutcome:
    goal: Goal
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run


def _baseline(result: SuiteResult) -> Target | None:
    return next((summary.target for summary in result.targets if summary.target.baseline), None)


def _pair(
    result: SuiteResult, target: str, base: str, scenario: str, concurrency: int
) -> tuple[WrkResult, WrkResult] | None:
    """The target's and the baseline's results at one point, when both ran and the baseline served something."""
    point, base_point = result.point(target, scenario, concurrency), result.point(base, scenario, concurrency)
    if point is None or base_point is None or base_point.requests_per_s <= 0:
        return None
    return point, base_point


def evaluate_goals(result: SuiteResult) -> list[GoalOutcome]:
    baseline = _baseline(result)
    outcomes = []
    for goal in GOALS:
        for summary in result.targets:
            if not summary.target.goals_apply:
                continue
            name = summary.target.name
            pair = _pair(result, name, baseline.name, goal.scenario, goal.concurrency) if baseline else None
            if pair is None:
                outcomes.append(GoalOutcome(goal, name, "not measured in this run", None))
            elif pair[0].errors or pair[1].errors:
                measured = f"errors during load ({pair[0].errors} here, {pair[1].errors} on bare)"
                outcomes.append(GoalOutcome(goal, name, measured, False))
            else:
                value = goal.value(*pair)
                outcomes.append(GoalOutcome(goal, name, goal.show(value), goal.passes(value)))
    return outcomes


# --- tables ----------------------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1) -> str:
    """A Markdown table; columns from `numeric_from` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def load_tables(result: SuiteResult) -> str:
    baseline = _baseline(result)
    sections = []
    for scenario in result.options.scenarios:
        rows = []
        for concurrency in result.options.concurrencies:
            base = result.point(baseline.name, scenario.name, concurrency) if baseline else None
            for summary in result.targets:
                point = result.point(summary.target.name, scenario.name, concurrency)
                if point is None:
                    continue
                ratio = f"{point.requests_per_s / base.requests_per_s:.0%}" if base and base.requests_per_s else "–"
                rows.append(
                    [
                        str(concurrency),
                        summary.target.name,
                        f"{point.requests_per_s:,.0f}",
                        f"{point.p50_ms:.3f}",
                        f"{point.p99_ms:.3f}",
                        ratio,
                        str(point.errors),
                    ]
                )
        headers = ["concurrency", "target", "req/s", "p50 (ms)", "p99 (ms)", "req/s vs bare", "errors"]
        table = markdown_table(headers, rows, numeric_from=2)
        sections.append(f"### Scenario `{scenario.name}`\n\n{scenario.description}\n\n{table}")
    return "\n\n".join(sections)


def ratio_table(result: SuiteResult) -> str:
    """fnserve (and peers) over bare, per concurrency, plus the p50 added at concurrency 1."""
    baseline = _baseline(result)
    if baseline is None:
        return "_No baseline target in this run._"
    sections = []
    for scenario in result.options.scenarios:
        headers = ["target"] + [f"req/s ratio c={c}" for c in result.options.concurrencies] + ["added p50 c=1 (ms)"]
        rows = []
        for summary in result.targets:
            if summary.target.baseline:
                continue
            row = [summary.target.name]
            for concurrency in result.options.concurrencies:
                pair = _pair(result, summary.target.name, baseline.name, scenario.name, concurrency)
                row.append(f"{pair[0].requests_per_s / pair[1].requests_per_s:.3f}" if pair else "–")
            pair = _pair(result, summary.target.name, baseline.name, scenario.name, 1)
            row.append(f"{pair[0].p50_ms - pair[1].p50_ms:+.3f}" if pair else "–")
            rows.append(row)
        sections.append(f"Scenario `{scenario.name}`:\n\n" + markdown_table(headers, rows))
    return "\n\n".join(sections) if any(not s.target.baseline for s in result.targets) else "_Only the baseline ran._"


def memory_table(result: SuiteResult) -> str:
    rows = [
        [
            summary.target.name,
            str(summary.memory.process_count),
            f"{summary.memory.rss_bytes / 2**20:.1f}",
            f"{summary.memory.pss_bytes / 2**20:.1f}" if summary.memory.pss_bytes is not None else "–",
        ]
        for summary in result.targets
    ]
    return markdown_table(["target", "processes", "RSS (MiB)", "PSS (MiB)"], rows)


def deploy_table(result: SuiteResult) -> str:
    rows = [
        [summary.target.name, scenario, f"{timing.first_response_s:.3f}", f"{timing.command_s:.3f}", str(timing.polls)]
        for summary in result.targets
        for scenario, timing in summary.deploys.items()
    ]
    if not rows:
        return "_No platform target was deployed in this run._"
    headers = ["target", "scenario", "deploy → first 200 (s)", "deploy command (s)", "polls"]
    return markdown_table(headers, rows, numeric_from=2)


def goals_table(result: SuiteResult) -> str:
    outcomes = evaluate_goals(result)
    if not outcomes:
        return "_No fnserve target ran, so no goal was checked._"
    verdict = {True: "**pass**", False: "**FAIL**", None: "not measured"}
    rows = [[o.goal.description, o.target, o.measured, verdict[o.passed]] for o in outcomes]
    return markdown_table(["goal", "target", "measured", "result"], rows, numeric_from=4)


def summary_markdown(result: SuiteResult) -> str:
    """Everything a run measured, as the Markdown printed to the terminal."""
    return "\n\n".join(
        [
            "## Throughput and latency\n\n" + load_tables(result),
            "## Ratios to the bare app\n\n" + ratio_table(result),
            "## Memory, idle after deploy\n\n" + memory_table(result),
            "## Deploy to first response\n\n" + deploy_table(result),
            "## Goals\n\n" + goals_table(result),
        ]
    )


def machine_table(environment: Environment) -> str:
    """The machine, the load generator, the commit and the package versions, as a two-column table."""
    machine = [
        ["CPUs", f"{environment.cpu_count} × {environment.cpu_model}"],
        ["memory", f"{environment.memory_gib:.1f} GiB"],
        ["kernel", environment.kernel],
        ["python", environment.python],
        ["load generator", environment.wrk],
        ["commit", environment.commit],
    ] + [[package, version] for package, version in environment.versions.items()]
    return markdown_table(["", ""], machine, numeric_from=2)


def results_markdown(result: SuiteResult, environment: Environment, *, command: str) -> str:
    """The generated part of RESULTS.md (everything above `NOTES_MARKER`)."""
    options = result.options
    threads = ", ".join(f"c={c}: {threads_for(c)}" for c in options.concurrencies)
    targets = "\n".join(f"- `{summary.target.name}`: {summary.target.description}" for summary in result.targets)
    return f"""# Benchmark results

- **Date:** {result.started_at:%Y-%m-%d %H:%M} UTC
- **Command:** `{command}`
- **Machine:** {environment.cpu_count} CPUs ({environment.cpu_model}), {environment.memory_gib:.1f} GiB, \
{environment.kernel}, {environment.python}

Everything above the notes marker at the end of this file is rewritten by the next run;
`benchmarks/run.py --help` lists the options.

## How it was measured

- Load: {environment.wrk}, concurrency (connections) {", ".join(map(str, options.concurrencies))}, threads {threads}.
- Each point: {options.warmup_s:g} s of warm-up (discarded), then {options.duration_s:g} s measured.
- The targets run side by side and are loaded in turn at each concurrency, on the same machine as wrk
  (wrk and the servers share the CPUs).
- Memory: summed VmRSS (and PSS) of each server's process tree, replicas included, {options.settle_s:g} s after
  the last deploy, before any load.
- Deploy to first response: from the start of `fnserve deploy` to the first 200 of the scenario's request,
  polled every 5 ms.

Targets:

{targets}

## Machine and versions

{machine_table(environment)}

{summary_markdown(result)}
"""


def write_results(path: Path, generated: str, *, marker: str = NOTES_MARKER) -> None:
    """Write `generated`, then `marker` and whatever was below it in the existing file (or a notes stub)."""
    notes = DEFAULT_NOTES
    if path.exists():
        previous = path.read_text()
        if marker in previous:
            notes = previous.split(marker, 1)[1].lstrip("\n")
    path.write_text(generated.rstrip("\n") + "\n\n" + marker + "\n\n" + notes)
