"""Turn a `SuiteResult` into Markdown: the tables printed after a run, the goals, and `RESULTS.md`.

`RESULTS.md` is rewritten on every full run down to `NOTES_MARKER`; the hand-written notes below it are kept.
Ratios are fnserve's number divided by the other target's, within the run.
"""

from __future__ import annotations

from collections.abc import Sequence

# Re-exported: jobs.py and cold_start.py build their own results files from these.
from benchmarks.environment import Environment as Environment
from benchmarks.environment import describe_environment as describe_environment
from benchmarks.environment import machine_table as machine_table
from benchmarks.environment import results_header
from benchmarks.goals import evaluate_goals
from benchmarks.markdown import NOTES_MARKER as NOTES_MARKER
from benchmarks.markdown import markdown_table as markdown_table
from benchmarks.markdown import write_results as write_results
from benchmarks.procs import Memory
from benchmarks.scenarios import Scenario
from benchmarks.suite import SuiteResult
from benchmarks.targets import Target
from benchmarks.wrk import threads_for

MIB = 2**20
DASH = "–"


def _baseline(result: SuiteResult) -> Target | None:
    return next((target for target in result.options.targets if target.baseline), None)


def _ran(result: SuiteResult) -> list[Target]:
    """The targets that started (some may have failed later), in the run's order."""
    started = {summary.target.name for summary in result.targets}
    return [target for target in result.options.targets if target.name in started]


def _times(ratio: float) -> str:
    return f"{ratio:.2f}×"


def _mib(memory: Memory | None, pss: bool = False) -> str:
    if memory is None:
        return DASH
    value = memory.pss_bytes if pss else memory.rss_bytes
    return DASH if value is None else f"{value / MIB:.1f}"


# --- per scenario ----------------------------------------------------------------------------------------------


def load_table(result: SuiteResult, scenario: Scenario) -> str:
    """Every target at every concurrency of the scenario: throughput, latency, CPU per request, errors."""
    baseline = _baseline(result)
    rows = []
    for concurrency in scenario.loaded_at(result.options.concurrencies):
        base = result.point(baseline.name, scenario.name, concurrency) if baseline else None
        for target in _ran(result):
            measured = result.measured(target.name, scenario.name, concurrency)
            if measured is None:
                continue
            point, cpu = measured.result, measured.cpu_ms_per_request
            ratio = f"{point.requests_per_s / base.requests_per_s:.0%}" if base and base.requests_per_s else DASH
            row = [str(concurrency), target.name, f"{point.requests_per_s:,.0f}"]
            if scenario.chunks:
                row.append(f"{point.requests_per_s * scenario.chunks:,.0f}")
            row += [f"{point.p50_ms:.3f}", f"{point.p99_ms:.3f}", DASH if cpu is None else f"{cpu:.3f}"]
            rows.append([*row, ratio, str(point.errors)])
    throughput = ["streams/s", "chunks/s"] if scenario.chunks else ["req/s"]
    headers = ["concurrency", "target", *throughput, "p50 (ms)", "p99 (ms)", "CPU ms/req", "vs bare", "errors"]
    return markdown_table(headers, rows, numeric_from=2)


def ratio_table(result: SuiteResult, scenario: Scenario) -> str:
    """Each fnserve target against each other target: throughput and p50 ratios at each concurrency."""
    concurrencies = scenario.loaded_at(result.options.concurrencies)
    ran = _ran(result)
    mine = [target for target in ran if target.goals_apply]
    others = [target for target in ran if not target.goals_apply]
    rows = []
    for target in mine:
        for other in others:
            pairs = [
                (result.point(target.name, scenario.name, c), result.point(other.name, scenario.name, c))
                for c in concurrencies
            ]
            throughput = [
                _times(a.requests_per_s / b.requests_per_s) if a and b and b.requests_per_s else DASH for a, b in pairs
            ]
            p50 = [_times(a.p50_ms / b.p50_ms) if a and b and b.p50_ms else DASH for a, b in pairs]
            rows.append([target.name, other.name, *throughput, *p50])
    if not rows:
        return "_No fnserve target and other target both ran._"
    headers = ["fnserve", "vs"] + [f"req/s c={c}" for c in concurrencies] + [f"p50 c={c}" for c in concurrencies]
    return markdown_table(headers, rows, numeric_from=2)


def first_chunk_table(result: SuiteResult, scenario: Scenario) -> str:
    rows = [
        [target.name, f"{first.p50_ms:.3f}", f"{first.p99_ms:.3f}", str(first.samples)]
        for target in _ran(result)
        if (first := result.first_chunks.get((target.name, scenario.name))) is not None
    ]
    if not rows:
        return "_Not probed in this run._"
    return markdown_table(["target", "first chunk p50 (ms)", "p99 (ms)", "requests"], rows)


def scenario_section(result: SuiteResult, scenario: Scenario) -> str:
    parts = [f"### Scenario `{scenario.name}`", scenario.description, load_table(result, scenario)]
    if scenario.chunks:
        parts += [
            "Time to first chunk (one request at a time on one connection, Python's `http.client`):",
            first_chunk_table(result, scenario),
        ]
    parts += [
        "fnserve ÷ other (req/s above 1× and p50 below 1× favour fnserve):",
        ratio_table(result, scenario),
    ]
    return "\n\n".join(parts)


# --- per target ------------------------------------------------------------------------------------------------


def start_table(result: SuiteResult) -> str:
    """Process start to the first good answer, and for platforms the deploy; failed peers with their reason."""
    rows = []
    for target in result.options.targets:
        summary = result.summary(target.name)
        if summary is None:
            rows.append([target.name, f"failed: {result.failures.get(target.name, 'did not start')}", DASH, DASH])
            continue
        ready = f"{summary.started_s:.3f} (`{target.ready.method} {target.ready.path}`)"
        deploys = summary.deploys.values()
        first = ", ".join(f"{timing.first_response_s:.3f}" for timing in deploys) or DASH
        command = ", ".join(f"{timing.command_s:.3f}" for timing in deploys) or DASH
        rows.append([target.name, ready, first, command])
    headers = ["target", "process start → first 200 (s)", "deploy → first 200 (s)", "deploy command (s)"]
    return markdown_table(headers, rows)


def memory_table(result: SuiteResult) -> str:
    rows = [
        [
            summary.target.name,
            str(summary.memory.process_count),
            _mib(summary.memory),
            _mib(summary.memory, pss=True),
            _mib(loaded := result.loaded_memory.get(summary.target.name)),
            _mib(loaded, pss=True),
            f"{summary.idle_cpu_percent:.1f}",
        ]
        for summary in result.targets
    ]
    headers = ["target", "processes", "idle RSS (MiB)", "idle PSS", "loaded RSS", "loaded PSS", "idle CPU (%)"]
    return markdown_table(headers, rows)


def cpu_table(result: SuiteResult) -> str:
    """CPU per request split between the main process and the rest of its tree, at concurrency 16 (or the top)."""
    concurrencies = result.options.concurrencies
    concurrency = 16 if 16 in concurrencies else max(concurrencies)
    rows = []
    for scenario in result.options.scenarios:
        for target in _ran(result):
            measured = result.measured(target.name, scenario.name, concurrency)
            if measured is None or not measured.result.requests:
                continue
            per_request = 1000 / measured.result.requests
            cpu = measured.cpu
            rows.append(
                [
                    scenario.name,
                    target.name,
                    f"{cpu.total_s * per_request:.3f}",
                    f"{cpu.root_s * per_request:.3f}",
                    f"{(cpu.total_s - cpu.root_s) * per_request:.3f}",
                ]
            )
    headers = ["scenario", "target", "CPU ms/req", "main process", "other processes"]
    return f"At concurrency {concurrency}:\n\n" + markdown_table(headers, rows, numeric_from=2)


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
            "## Goals\n\n" + goals_table(result),
            "## Start to first response\n\n" + start_table(result),
            "## Throughput and latency\n\n"
            + "\n\n".join(scenario_section(result, scenario) for scenario in result.options.scenarios),
            "## Memory and idle CPU\n\n" + memory_table(result),
            "## CPU per request\n\n" + cpu_table(result),
        ]
    )


# --- the file --------------------------------------------------------------------------------------------------


def _target_line(result: SuiteResult, target: Target) -> str:
    line = f"- `{target.name}`: {target.description}"
    if target.name in result.failures:
        line += f" — **failed: {result.failures[target.name]}**"
    return line


def peer_versions_table(result: SuiteResult) -> str:
    rows = [
        [summary.target.name, ", ".join(f"{package} {version}" for package, version in summary.versions.items())]
        for summary in result.targets
        if summary.versions
    ]
    if not rows:
        return "_No peer ran._"
    return markdown_table(["peer", "packages in its venv"], rows, numeric_from=2)


def _joined(values: Sequence[object]) -> str:
    return ", ".join(map(str, values))


def results_markdown(result: SuiteResult, environment: Environment, *, command: str) -> str:
    """The generated part of RESULTS.md (everything above `NOTES_MARKER`)."""
    options = result.options
    threads = _joined([f"c={c}: {threads_for(c)}" for c in options.concurrencies])
    targets = "\n".join(_target_line(result, target) for target in options.targets)
    streams = [scenario for scenario in options.scenarios if scenario.chunks]
    stream_note = "".join(
        f"\n- `{scenario.name}` is loaded at concurrency {_joined(scenario.loaded_at(options.concurrencies))} only."
        for scenario in streams
    )
    header = results_header(
        "Benchmark results", result.started_at, environment, command=command, script="benchmarks/run.py"
    )
    return f"""{header}

## How it was measured

- Load: {environment.wrk}, concurrency (connections) {_joined(options.concurrencies)}, threads {threads}.{stream_note}
- Each point: {options.warmup_s:g} s of warm-up (discarded), then {options.duration_s:g} s measured.
- The targets run side by side and are loaded in turn at each concurrency, on the same machine as wrk
  (wrk and the servers share the CPUs); an idle target's own background work (idle CPU below) runs meanwhile.
- fnserve is measured with everything on: every request carries the owner key (auth), goes through the
  gateway's router and metrics, and has its arguments validated against the endpoint's type hints.
- CPU ms/req: user + system CPU time of the target's whole process tree (from /proc) during the measured run,
  divided by the requests wrk counted.
- Memory: summed VmRSS (and PSS) of each target's process tree, idle ({options.settle_s:g} s after the last
  deploy, over which idle CPU is read) and loaded (right after the load at concurrency {max(options.concurrencies)},
  the largest over scenarios).
- Start: from starting the target's process to its first 200 (polled every 10 ms); for fnserve, from
  `fnserve deploy` to the first 200 of the no-op (polled every 5 ms).

Targets:

{targets}

## Machine and versions

{machine_table(environment)}

Peers, each in its own venv outside the repo:

{peer_versions_table(result)}

{summary_markdown(result)}
"""
