"""The job-queue benchmark: jobs/s submitted and completed for the no-op endpoint, and the submit → COMPLETED time.

    .venv/bin/python benchmarks/jobs.py                 # 1 and 2 replicas, 3 s each; rewrites JOBS_RESULTS.md
    .venv/bin/python benchmarks/jobs.py --smoke         # 1 s with one replica, no warm-up; prints only
    .venv/bin/python benchmarks/jobs.py --replicas 2 --duration 10 --max-request-concurrency 32

One `fnserve server` (fresh home, SQLite) serves `benchmarks/apps/noop.py`. For each replica count, wrk posts
`/noop/run` for the duration; the harness then waits until `/noop/health` shows nothing queued or running and reads
the jobs back. Needs wrk (`benchmarks/setup.sh`) and fnserve installed in this venv; logs stay in the work directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as `python benchmarks/jobs.py`: import `benchmarks` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.environment import results_header
from benchmarks.probes import request
from benchmarks.procs import WaitTimeout, free_port, wait_until
from benchmarks.report import Environment, describe_environment, machine_table, markdown_table, write_results
from benchmarks.scenarios import NOOP
from benchmarks.targets import BENCHMARKS_DIR, RunningTarget, TargetError, fnserve_target, launch
from benchmarks.wrk import WrkError, WrkResult, find_wrk, parse_wrk_output, run_wrk_output, threads_for

DEFAULT_OUTPUT = BENCHMARKS_DIR / "JOBS_RESULTS.md"
NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; jobs.py keeps it when it rewrites this file -->"
)
GOAL_JOBS_PER_S = 1000.0
LIST_LIMIT = 1000  # the most `GET /v1/jobs` returns: the newest jobs of the point
FIRST_JOBS_PER_THREAD = 16  # job ids each wrk thread keeps from its first 202s, to find the first submit

SUBMIT = dataclasses.replace(
    NOOP,
    name="noop-run",
    description='POST `{"endpoint": "/noop", "input": {}}` to `/noop/run`: queue a no-op job.',
    path="/noop/run",
    body=b'{"endpoint": "/noop", "input": {}}',
    expected_body=b"",  # each answer holds a new job id; `check_job_runs` checks one job end to end instead
)
DEPLOYMENT_PATH = f"/v1/deployments/functions/{NOOP.service_name}/versions/1"

# wrk hooks: count the 202s, keep the first job ids and the first other answer of each thread; `done` prints them.
COUNTING_LUA = f"""
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  accepted = 0
  first_jobs = ""
  refused = ""
end
function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    if accepted <= {FIRST_JOBS_PER_THREAD} then first_jobs = first_jobs .. body .. "\\n" end
  elseif refused == "" then
    refused = "fnserve-refused " .. status .. " " .. string.gsub(body, "\\n", " ") .. "\\n"
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("accepted")
    io.write(thread:get("first_jobs"), thread:get("refused"))
  end
  io.write("fnserve-accepted ", total, "\\n")
end
"""


@dataclass(frozen=True, kw_only=True)
class JobsOptions:
    """What to run: each replica count gets `warmup_s` of discarded load (drained), then `duration_s` measured."""

    replicas: list[int]
    concurrency: int
    duration_s: float
    warmup_s: float
    work_dir: Path
    drain_timeout_s: float
    max_request_concurrency: int | None = None  # None: the deployment's default


@dataclass(frozen=True, kw_only=True)
class JobsPoint:
    """One replica count, measured. Times in seconds, latencies in milliseconds."""

    replicas: int
    submit: WrkResult  # wrk's view of `POST /noop/run`
    connections: int
    accepted: int  # 202s wrk counted; it drops the answers still in flight when its duration ends
    states: dict[str, int]  # this point's jobs by state, from /health (`completed`, `failed`, ..., `in_queue`)
    drained: bool  # nothing queued or running, and every accepted job finished, within the drain timeout
    refused: str | None  # the first answer other than 202 wrk got (status and body), if any
    drain_s: float  # from the end of the load until drained (or the timeout)
    window_s: float  # first job's created_at → last job's finished_at
    sampled: int  # jobs read back (the newest, at most LIST_LIMIT)
    p50_ms: float
    p99_ms: float
    delay_p50_ms: float  # of which queued (`delay_ms`)
    execution_p50_ms: float  # of which running on a replica (`execution_ms`)

    @property
    def completed(self) -> int:
        return self.states.get("completed", 0)

    @property
    def created(self) -> int:
        """Jobs the server created during the load, whatever their state."""
        return sum(self.states.values())

    @property
    def jobs_per_s(self) -> float:
        return self.completed / self.window_s if self.window_s > 0 else 0.0

    @property
    def all_completed(self) -> bool:
        """Every job created was COMPLETED, every 202 wrk counted is among them, and wrk saw no error.

        The server may have created up to `connections` jobs more than wrk counted: the submits in flight when
        wrk stopped, whose answers it drops.
        """
        return (
            self.drained
            and self.completed == self.created
            and self.accepted <= self.created <= self.accepted + self.connections
            and self.submit.errors == 0
        )


@dataclass
class JobsResult:
    options: JobsOptions
    started_at: datetime
    points: list[JobsPoint] = dataclasses.field(default_factory=list)


def _call(running: RunningTarget, method: str, path: str, body: Any = None, *, timeout_s: float = 10.0) -> Any:
    """Send one owner-authenticated request and return its JSON; `TargetError` unless it answered 2xx."""
    payload = None if body is None else orjson.dumps(body)
    reply = request(running.url, method, path, body=payload, headers=SUBMIT.headers, timeout_s=timeout_s)
    if reply is None or not 200 <= reply.status < 300:
        got = "no answer" if reply is None else f"{reply.status} {reply.body[:300]!r}"
        raise TargetError(f"{method} {path} answered {got}; server log {running.log_path}")
    return orjson.loads(reply.body)


def set_replicas(running: RunningTarget, replicas: int, max_request_concurrency: int | None) -> None:
    """PUT the deployment's instance counts (and concurrency), then wait until exactly `replicas` are READY."""
    spec: dict[str, int] = {"min_instances": replicas, "max_instances": replicas}
    if max_request_concurrency is not None:
        spec["max_request_concurrency"] = max_request_concurrency
    _call(running, "PUT", DEPLOYMENT_PATH, spec, timeout_s=30)
    last: list[Any] = [None]

    def ready() -> bool | None:
        running.check_alive(f"scaling to {replicas} replicas")
        last[0] = info = _call(running, "GET", DEPLOYMENT_PATH)
        states = [replica["state"] for replica in info["replicas"]]
        return True if info["state"] == "ACTIVE" and states == ["READY"] * replicas else None

    wait_until(ready, timeout_s=60, what=f"{replicas} READY replicas", describe=lambda: f"last deployment: {last[0]}")


def check_job_runs(running: RunningTarget) -> None:
    """Submit one job and wait for it to complete with the no-op's answer, so wrk never measures a failing queue."""
    submitted = _call(running, "POST", SUBMIT.path, orjson.loads(SUBMIT.body))
    job = _call(running, "GET", f"/noop/status/{submitted['id']}?wait_s=10", timeout_s=15)
    if job["status"] != "COMPLETED" or job["output"] != "ok":
        raise TargetError(f"A test job ended {job['status']} ({job}), expected COMPLETED with 'ok'")


def _health(running: RunningTarget) -> dict[str, int]:
    counts: dict[str, int] = _call(running, "GET", "/noop/health")["jobs"]
    return counts


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` 0.5 for p50); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _load(wrk: str, running: RunningTarget, options: JobsOptions, duration_s: float) -> tuple[WrkResult, str]:
    output = run_wrk_output(
        wrk,
        url=running.url,
        scenario=SUBMIT,
        connections=options.concurrency,
        duration_s=duration_s,
        script_dir=options.work_dir,
        extra_lua=COUNTING_LUA,
    )
    return parse_wrk_output(output), output


def _drain(running: RunningTarget, before: dict[str, int], accepted: int, timeout_s: float) -> dict[str, int] | None:
    """Wait until nothing is queued or running and `accepted` more jobs finished; the counts, or None on timeout."""

    def idle() -> dict[str, int] | None:
        running.check_alive("draining the queue")
        now = _health(running)
        finished = sum(now[key] - before[key] for key in ("completed", "failed", "cancelled", "timed_out"))
        return now if now["in_queue"] == 0 and now["in_progress"] == 0 and finished >= accepted else None

    try:
        return wait_until(idle, timeout_s=timeout_s, what="the queue to drain", interval_s=0.02)
    except WaitTimeout:
        return None


def measure(wrk: str, running: RunningTarget, replicas: int, options: JobsOptions) -> JobsPoint:
    """Load `/noop/run` at one replica count, drain the queue, and read the jobs back."""
    set_replicas(running, replicas, options.max_request_concurrency)
    check_job_runs(running)
    if options.warmup_s > 0:
        _load(wrk, running, options, options.warmup_s)
        if _drain(running, _health(running), 0, options.drain_timeout_s) is None:
            raise TargetError(f"The warm-up's jobs did not drain within {options.drain_timeout_s:g} s")
    before = _health(running)
    load_started = datetime.now(UTC)  # the server's clock too: it runs on this machine
    submit, output = _load(wrk, running, options, options.duration_s)
    load_ended = time.monotonic()
    accepted = int(output.rsplit("fnserve-accepted ", 1)[1].split()[0])
    refused = next(
        (line.removeprefix("fnserve-refused ") for line in output.splitlines() if "fnserve-refused " in line), None
    )
    after = _drain(running, before, accepted, options.drain_timeout_s)
    drain_s = time.monotonic() - load_ended
    counts = after if after is not None else _health(running)
    states = {key: counts[key] - before[key] for key in ("completed", "failed", "cancelled", "timed_out")}
    states["in_queue"], states["in_progress"] = counts["in_queue"], counts["in_progress"]

    listed = _call(running, "GET", f"/v1/jobs?service={NOOP.service_name}&limit={LIST_LIMIT}")
    jobs = [job for job in listed if _at(job["created_at"]) >= load_started]  # not the warm-up's
    # The listing is newest first and misses the first jobs of a long run; wrk's threads kept their first job ids.
    first_ids = [orjson.loads(line)["id"] for line in output.splitlines() if line.startswith('{"id"')]
    first = [_call(running, "GET", f"/noop/status/{job_id}") for job_id in first_ids]
    started_at = min((_at(job["created_at"]) for job in first + jobs), default=load_started)
    done = [job for job in jobs if job["status"] == "COMPLETED"]
    ended_at = max((_at(job["finished_at"]) for job in done), default=started_at)
    latencies = [(_at(job["finished_at"]) - _at(job["created_at"])).total_seconds() * 1000 for job in done]
    return JobsPoint(
        replicas=replicas,
        submit=submit,
        connections=options.concurrency,
        accepted=accepted,
        states=states,
        drained=after is not None,
        refused=refused,
        drain_s=drain_s,
        window_s=(ended_at - started_at).total_seconds(),
        sampled=len(done),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        delay_p50_ms=percentile([float(job["delay_ms"]) for job in done], 0.50),
        execution_p50_ms=percentile([float(job["execution_ms"]) for job in done], 0.50),
    )


def run_jobs(options: JobsOptions, *, log: Callable[[str], None] = print) -> JobsResult:
    """Start a server, deploy the no-op service, measure each replica count, stop the server.

    Raises:
        WrkError: wrk is not installed or failed.
        TargetError: The server did not start, deploy, scale or run a job (the message names its log).
        WaitTimeout: A bounded wait ran out.
    """
    wrk = find_wrk()
    if wrk is None:
        raise WrkError("wrk is not installed; run `benchmarks/setup.sh` (apt-get install -y wrk)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    result = JobsResult(options=options, started_at=datetime.now(UTC))
    target = dataclasses.replace(fnserve_target(1), name="fnserve-jobs")
    with launch(target, port=free_port(), work_dir=options.work_dir) as running:
        log(f"Server pid {running.process.pid} on {running.url}, log {running.log_path}")
        assert target.deploy is not None
        target.deploy(running, NOOP)
        for replicas in options.replicas:
            point = measure(wrk, running, replicas, options)
            result.points.append(point)
            log(
                f"  replicas={replicas}: {point.jobs_per_s:,.0f} jobs/s, "
                f"submitted {point.submit.requests_per_s:,.0f}/s, "
                f"submit → COMPLETED p50 {point.p50_ms:.1f} ms p99 {point.p99_ms:.1f} ms, "
                f"{point.completed:,} of {point.created:,} jobs completed, wrk counted {point.accepted:,} 202s"
            )
    return result


# --- Markdown --------------------------------------------------------------------------------------------------


def point_table(point: JobsPoint) -> str:
    others = ", ".join(f"{state} {n}" for state, n in point.states.items() if state != "completed" and n) or "none"
    rows = [
        ["jobs/s, submitted and completed", f"{point.jobs_per_s:,.0f}"],
        ["submit rate (wrk req/s of `/run`)", f"{point.submit.requests_per_s:,.0f}"],
        ["of which accepted (202s/s)", f"{point.accepted / point.submit.duration_s:,.0f}"],
        ["submit latency p50 / p99 (ms)", f"{point.submit.p50_ms:.3f} / {point.submit.p99_ms:.3f}"],
        [f"submit → COMPLETED p50 (ms), newest {point.sampled} jobs", f"{point.p50_ms:.1f}"],
        [f"submit → COMPLETED p99 (ms), newest {point.sampled} jobs", f"{point.p99_ms:.1f}"],
        ["`delay_ms` p50 / `execution_ms` p50, same jobs", f"{point.delay_p50_ms:.1f} / {point.execution_p50_ms:.1f}"],
        ["jobs created (server's count)", f"{point.created:,}"],
        ["202s counted by wrk (without the answers in flight when it stopped)", f"{point.accepted:,}"],
        ["COMPLETED", f"{point.completed:,}"],
        ["other states (failed, cancelled, timed out, still queued or running)", others],
        ["wrk non-2xx / socket errors", f"{point.submit.non_2xx:,} / {point.submit.socket_errors:,}"],
        ["first submit → last finished_at (s)", f"{point.window_s:.2f}"],
        ["end of load → queue empty (s)", f"{point.drain_s:.2f}" + ("" if point.drained else " (timed out)")],
    ]
    if point.refused is not None:
        rows.append(["first answer other than 202", f"`{point.refused[:200]}`"])
    return markdown_table(["", ""], rows, numeric_from=1)


def goals_table(result: JobsResult) -> str:
    rows = []
    for point in result.points:
        passed = point.all_completed and point.jobs_per_s >= GOAL_JOBS_PER_S
        measured = f"{point.jobs_per_s:,.0f} jobs/s" + ("" if point.all_completed else ", NOT all jobs completed")
        rows.append([str(point.replicas), measured, "**pass**" if passed else "**FAIL**"])
    return markdown_table(["replicas", "measured", "result"], rows)


def summary_markdown(result: JobsResult) -> str:
    sections = [
        f"### {point.replicas} replica{'s' if point.replicas > 1 else ''}\n\n{point_table(point)}"
        for point in result.points
    ]
    goal = f"## Goal: ≥ {GOAL_JOBS_PER_S:,.0f} jobs/s end to end on SQLite, every job COMPLETED\n\n"
    return "## Results\n\n" + "\n\n".join(sections) + "\n\n" + goal + goals_table(result)


def results_markdown(result: JobsResult, environment: Environment, *, command: str) -> str:
    """The generated part of JOBS_RESULTS.md (everything above `NOTES_MARKER`)."""
    options = result.options
    concurrency = "the default (8)" if options.max_request_concurrency is None else str(options.max_request_concurrency)
    header = results_header(
        "Job-queue benchmark results", result.started_at, environment, command=command, script="benchmarks/jobs.py"
    )
    return f"""{header}

## How it was measured

- One `fnserve server` with a fresh home (SQLite state store), the no-op service (`{NOOP.service_entrypoint}`)
  deployed; every request carries the owner key. Replicas are set with `PUT {DEPLOYMENT_PATH}`
  (`min_instances` = `max_instances` = n, `max_request_concurrency` {concurrency}).
- Load: {environment.wrk}, {options.concurrency} connections, {threads_for(options.concurrency)} threads, \
{options.duration_s:g} s per replica count,
  each request `POST {SUBMIT.path}` `{SUBMIT.body.decode()}`; before it, {options.warmup_s:g} s of warm-up whose
  jobs are drained and not counted. wrk, the server and the replicas share the CPUs.
- After the load, `/noop/health` is polled until nothing is queued or in progress (at most
  {options.drain_timeout_s:g} s); counts are the difference from before the load.
- **jobs/s** = jobs COMPLETED / (the first job's `created_at` → the last job's `finished_at`), from the jobs
  themselves. The first job is the earliest of the first {FIRST_JOBS_PER_THREAD} job ids each wrk thread got back.
- **Submit → COMPLETED** = `finished_at − created_at` over the newest {LIST_LIMIT} jobs (the most `GET /v1/jobs`
  returns): the end of the load, where the queue is longest when submits outpace the replicas.
- **Every job completed** = every job the server created during the load is COMPLETED (none failed, cancelled,
  timed out or left queued), wrk saw no non-2xx answer or socket error, and the jobs created are wrk's 202s plus at
  most one per connection (the submits in flight when wrk stopped: the server took them, wrk dropped the answers).

## Machine and versions

{machine_table(environment)}

{summary_markdown(result)}
"""


# --- command line ----------------------------------------------------------------------------------------------


def _positive_ints(value: str) -> list[int]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {value!r}")
    return [int(part) for part in parts]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/jobs.py",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument("--smoke", action="store_true", help="1 s, one replica, no warm-up; no file unless --output")
    parser.add_argument("--replicas", type=_positive_ints, help="comma-separated replica counts (default 1,2; smoke 1)")
    parser.add_argument("--duration", type=float, help="seconds of load per replica count (default 3; smoke 1)")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load first (default 1; smoke 0)")
    parser.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--max-request-concurrency", type=int, help="per replica (default: the deployment's)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the queue to empty")
    parser.add_argument("--output", type=Path, help=f"results file (default {DEFAULT_OUTPUT}; none when --smoke)")
    parser.add_argument("--work-dir", type=Path, help="where logs and the server home go (default: a new temp dir)")
    parser.add_argument("--check-goals", action="store_true", help="exit with 1 when the goal is missed")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, got {args.concurrency}")
    return args


def options_from_args(args: argparse.Namespace) -> JobsOptions:
    smoke: bool = args.smoke
    return JobsOptions(
        replicas=args.replicas or ([1] if smoke else [1, 2]),
        concurrency=args.concurrency,
        # Longer runs fill the no-op's queue (max_queued 10,000) with one replica: submits outpace it (see notes).
        duration_s=args.duration if args.duration is not None else (1.0 if smoke else 3.0),
        warmup_s=args.warmup if args.warmup is not None else (0.0 if smoke else 1.0),
        work_dir=args.work_dir or Path(tempfile.mkdtemp(prefix="fnserve-bench-jobs-")),
        drain_timeout_s=args.drain_timeout,
        max_request_concurrency=args.max_request_concurrency,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(
            f"wrk is not installed. Install it with `{BENCHMARKS_DIR / 'setup.sh'}`, then run this again.",
            file=sys.stderr,
        )
        return 2
    options = options_from_args(args)
    command = shlex.join(["benchmarks/jobs.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"Logs and server home: {options.work_dir}")
    try:
        result = run_jobs(options)
    except (TargetError, WrkError, WaitTimeout) as exc:
        print(f"\nBenchmark failed: {exc}\nLogs: {options.work_dir}", file=sys.stderr)
        return 1

    print("\n" + summary_markdown(result))
    output: Path | None = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is not None:
        write_results(output, results_markdown(result, describe_environment(wrk), command=command), marker=NOTES_MARKER)
        print(f"\nWrote {output}")
    print(f"Logs: {options.work_dir}")
    missed = any(not point.all_completed or point.jobs_per_s < GOAL_JOBS_PER_S for point in result.points)
    return 1 if missed and args.check_goals else 0


if __name__ == "__main__":
    sys.exit(main())
