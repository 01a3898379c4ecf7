"""The batching benchmark: a vectorizable endpoint per item and with `@fs.batch`, beside Ray Serve's `@serve.batch`.

    .venv/bin/python benchmarks/batching.py              # c=64, 8 s per point, with Ray; rewrites BATCHING_RESULTS.md
    .venv/bin/python benchmarks/batching.py --smoke      # 1 s per point, no warm-up, no Ray; prints only
    .venv/bin/python benchmarks/batching.py --no-peers --duration 4 --concurrency 16,64

One `fnserve server` (fresh home) serves `benchmarks/apps/vectorized.py` (one replica): `/vectorized/plain` runs the
model on one item per call, `/vectorized/batched` on the calls `@fs.batch` gathered. Ray Serve serves the same model
the same two ways (`benchmarks/peers/ray_batching_app.py`, from the Ray peer's venv: `peer_envs.py`). wrk loads each
path in turn at each concurrency, after a warm-up. Every server runs BLAS on one thread (`OPENBLAS_NUM_THREADS=1`
and kin, as CPU inference with several replicas per machine does): BLAS threads on tiny matrices only spin.
Needs wrk (`benchmarks/setup.sh`); logs stay in the work directory printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as `python benchmarks/batching.py`: import `benchmarks` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.environment import results_header
from benchmarks.markdown import markdown_table, write_results
from benchmarks.peer_envs import CACHE_ENV_VAR, PeerInstallError, default_cache_dir
from benchmarks.peer_targets import PEER_APPS_DIR, RAY_SERVE, peer_target
from benchmarks.probes import request
from benchmarks.procs import WaitTimeout, free_port, start_process, stop_process_tree, wait_until
from benchmarks.report import describe_environment, machine_table
from benchmarks.scenarios import JSON_HEADERS, Scenario
from benchmarks.targets import (
    BENCHMARKS_DIR,
    FNSERVE_BIN,
    REPO_ROOT,
    RunningTarget,
    TargetError,
    _fnserve_env,
    fnserve_target,
    launch,
    owner_headers,
    service_state,
)
from benchmarks.wrk import WrkError, WrkResult, find_wrk, run_wrk

DEFAULT_OUTPUT = BENCHMARKS_DIR / "BATCHING_RESULTS.md"
NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; batching.py keeps it when it rewrites this file -->"
)
ENTRYPOINT = "benchmarks/apps/vectorized.py:Vectorized"
GOAL_SPEEDUP = 3.0  # issue 17: at c=64, batching gives at least 3× the throughput
BLAS_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
ITEM = [round(0.05 * index - 0.4, 2) for index in range(16)]

PLAIN = Scenario(
    name="plain",
    description="one item per call",
    method="POST",
    path="/vectorized/plain",
    body=orjson.dumps({"x": ITEM}),
    headers=JSON_HEADERS,
    expected_body=b"",
    service_entrypoint=ENTRYPOINT,
    service_name="vectorized",
)
BATCHED = dataclasses.replace(PLAIN, name="batched", description="batched", path="/vectorized/batched")

RAY_BATCHING = dataclasses.replace(
    RAY_SERVE,
    name="ray",
    description="Ray Serve: `@serve.batch` on the same model, FastAPI ingress (`peers/ray_batching_app.py`)",
    command=lambda venv, port: [str(venv.python), str(PEER_APPS_DIR / "ray_batching_app.py"), "--port", str(port)],
)


@dataclass(frozen=True)
class Point:
    target: str
    scenario: str
    concurrency: int
    result: WrkResult | None
    error: str | None = None
    mean_batch_size: float | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/batching.py",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument("--smoke", action="store_true", help="1 s per point at c=64, no warm-up, no Ray, no file")
    parser.add_argument("--duration", type=float, help="seconds measured per point (default 8; smoke 1)")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load before each point (default 2; smoke 0)")
    parser.add_argument("--concurrency", default="64", help="comma-separated connection counts (default 64)")
    parser.add_argument("--no-peers", action="store_true", help="fnserve only, no Ray Serve")
    parser.add_argument(
        "--peer-cache",
        type=Path,
        default=default_cache_dir(),
        help=f"where Ray's venv lives (default ${CACHE_ENV_VAR} or ~/.cache/fnserve-bench)",
    )
    parser.add_argument("--output", type=Path, help=f"results file (default {DEFAULT_OUTPUT}; none when --smoke)")
    parser.add_argument("--work-dir", type=Path, help="where logs and server homes go (default: a new temp dir)")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(part) for part in args.concurrency.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--concurrency takes positive integers, got {args.concurrency}")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency takes positive integers")
    return args


def deploy_vectorized(running: RunningTarget) -> None:
    """`fnserve deploy` the model service and wait until it is ACTIVE."""
    log_path = running.log_path.with_name("fnserve-deploy-vectorized.log")
    argv = [str(FNSERVE_BIN), "deploy", ENTRYPOINT, "--url", running.url]
    process = start_process(argv, log_path=log_path, env=_fnserve_env(running.home), cwd=REPO_ROOT)
    try:
        code = process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        raise TargetError(f"`{shlex.join(argv)}` did not finish in 180 s; log {log_path}") from None
    finally:
        stop_process_tree(process)
    if code != 0:
        raise TargetError(f"`{shlex.join(argv)}` failed with code {code}; log {log_path}")
    wait_until(
        lambda: service_state(running, "vectorized") == "ACTIVE" or None,
        timeout_s=60,
        what="the vectorized service to be ACTIVE",
    )


def check_answer(url: str, scenario: Scenario) -> None:
    """One call must answer 200 with 16 numbers, the same for both paths (checked against the model here)."""
    reply = request(url, scenario.method, scenario.path, body=scenario.body, headers=scenario.headers, timeout_s=30)
    if reply is None or reply.status != 200:
        raise TargetError(f"{url}{scenario.path} answered {reply.status if reply else 'nothing'}")
    import numpy as np  # the harness's venv has it (fnserve's dev extras); the check is only here

    from benchmarks.apps.vectorized import forward, weights

    expected = forward(weights(), np.asarray([ITEM], dtype=np.float32))[0]
    got = np.asarray(orjson.loads(reply.body), dtype=np.float32)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4):
        raise TargetError(f"{url}{scenario.path} answered {reply.body[:200]!r}, not the model's output")


def mean_batch_size(running: RunningTarget) -> tuple[float, float] | None:
    """(batches, calls) of /batched so far, from fnserve's /metrics."""
    reply = request(running.url, "GET", "/metrics", headers=owner_headers(running.home), timeout_s=10)
    if reply is None or reply.status != 200:
        return None
    labels = 'service="vectorized",endpoint="POST /batched"'
    values = dict(line.rsplit(" ", 1) for line in reply.body.decode().splitlines() if line and line[0] != "#")
    count, total = (
        values.get(f"fnserve_batch_size_count{{{labels}}}"),
        values.get(f"fnserve_batch_size_sum{{{labels}}}"),
    )
    return None if count is None or total is None else (float(count), float(total))


def measure(
    wrk: str, running: RunningTarget, options: argparse.Namespace, work_dir: Path, name: str
) -> Iterator[Point]:
    for scenario in (PLAIN, BATCHED):
        check_answer(running.url, scenario)
        for concurrency in options.concurrency:
            before = mean_batch_size(running) if name == "fnserve" else None
            try:
                if options.warmup > 0:
                    run_wrk(
                        wrk,
                        url=running.url,
                        scenario=scenario,
                        connections=concurrency,
                        duration_s=options.warmup,
                        script_dir=work_dir,
                        request_timeout_s=10,
                    )
                    before = mean_batch_size(running) if name == "fnserve" else None
                result = run_wrk(
                    wrk,
                    url=running.url,
                    scenario=scenario,
                    connections=concurrency,
                    duration_s=options.duration,
                    script_dir=work_dir,
                    request_timeout_s=10,
                )
            except WrkError as exc:
                yield Point(name, scenario.name, concurrency, None, str(exc).splitlines()[0])
                continue
            after = mean_batch_size(running) if name == "fnserve" else None
            mean = None
            if scenario is BATCHED and before is not None and after is not None and after[0] > before[0]:
                mean = (after[1] - before[1]) / (after[0] - before[0])
            point = Point(name, scenario.name, concurrency, result, mean_batch_size=mean)
            print(
                f"  {name:8} {scenario.name:8} c={concurrency:<3} {result.requests_per_s:8.0f} req/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}"
                + (f"  mean batch {mean:.1f}" if mean is not None else "")
            )
            yield point


def run(wrk: str, options: argparse.Namespace, work_dir: Path) -> tuple[list[Point], dict[str, str]]:
    points: list[Point] = []
    versions: dict[str, str] = {}
    print("fnserve:")
    with launch(fnserve_target(1), port=free_port(), work_dir=work_dir) as running:
        deploy_vectorized(running)
        points += measure(wrk, running, options, work_dir, "fnserve")
    if options.no_peers:
        return points, versions
    print("Ray Serve:")
    target = peer_target(RAY_BATCHING, options.peer_cache)
    try:
        assert target.install is not None
        versions = target.install(work_dir)
        with launch(target, port=free_port(), work_dir=work_dir) as running:
            points += measure(wrk, running, options, work_dir, "ray")
    except (PeerInstallError, TargetError, WaitTimeout) as exc:
        message = str(exc).splitlines()[0]
        print(f"  Ray Serve failed: {message}", file=sys.stderr)
        points += [Point("ray", s.name, c, None, message) for s in (PLAIN, BATCHED) for c in options.concurrency]
    return points, versions


def results_markdown(points: list[Point], versions: dict[str, str], options: argparse.Namespace, command: str) -> str:
    environment = describe_environment(find_wrk())
    header = results_header(
        "Batching benchmark", datetime.now(UTC), environment, command=command, script="benchmarks/batching.py"
    )
    by_key = {(p.target, p.scenario, p.concurrency): p for p in points}
    rows = []
    for p in points:
        if p.result is None:
            rows.append([p.target, p.scenario, str(p.concurrency), "failed", "", "", "", "", p.error or ""])
            continue
        plain = by_key.get((p.target, "plain", p.concurrency))
        ratio = (
            f"{p.result.requests_per_s / plain.result.requests_per_s:.1f}×"
            if p.scenario == "batched" and plain is not None and plain.result is not None
            else ""
        )
        batch = f"{p.mean_batch_size:.1f}" if p.mean_batch_size is not None else ""
        rows.append(
            [
                p.target,
                p.scenario,
                str(p.concurrency),
                f"{p.result.requests_per_s:,.0f}",
                f"{p.result.p50_ms:.2f}",
                f"{p.result.p99_ms:.2f}",
                ratio,
                batch,
                str(p.result.errors),
            ]
        )
    table = markdown_table(
        ["target", "endpoint", "c", "req/s", "p50 ms", "p99 ms", "batched ÷ plain", "mean batch", "errors"],
        rows,
        numeric_from=2,
    )
    comparisons = []
    for concurrency in options.concurrency:
        ours, theirs = by_key.get(("fnserve", "batched", concurrency)), by_key.get(("ray", "batched", concurrency))
        plain = by_key.get(("fnserve", "plain", concurrency))
        if ours is not None and ours.result is not None and plain is not None and plain.result is not None:
            speedup = ours.result.requests_per_s / plain.result.requests_per_s
            verdict = "met" if speedup >= GOAL_SPEEDUP else "not met"
            comparisons.append(
                f"- c={concurrency}: `@fs.batch` gives **{speedup:.1f}×** the throughput of the per-item endpoint "
                f"(goal ≥ {GOAL_SPEEDUP:g}×: {verdict})."
            )
        if ours is not None and ours.result is not None and theirs is not None and theirs.result is not None:
            comparisons.append(
                f"- c={concurrency}: fnserve's batched endpoint serves "
                f"**{ours.result.requests_per_s / theirs.result.requests_per_s:.1f}×** Ray Serve's `@serve.batch` "
                f"requests/s, at {ours.result.p50_ms / theirs.result.p50_ms:.2f}× its p50."
            )
    peer_lines = "\n".join(f"- {name} {version}" for name, version in sorted(versions.items())) or "- (not run)"
    return f"""{header}

## What runs

A small recurrent numpy model (a 64-wide tanh cell run for 400 steps on 16 input floats;
`benchmarks/apps/vectorized.py`): per item, 400 steps of numpy calls on a 64-vector; a batch makes the same calls
on a (batch, 64) matrix. `plain` runs one item per call, `batched` the calls gathered by
`@fs.batch(max_batch_size=64, batch_wait_timeout_s=0.005)` (Ray: `@serve.batch` with the same values and
`max_ongoing_requests=128`, fnserve's default for this service). One replica each, BLAS on one thread; wrk sends
the same 16-number body on every call, {options.duration:g} s per point after {options.warmup:g} s of warm-up.
"mean batch" is fnserve's `/metrics` (`fnserve_batch_size`) over the point.

{machine_table(environment)}

Ray Serve's packages:

{peer_lines}

## Results

{table}

{chr(10).join(comparisons)}
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.no_peers = True
    args.duration = args.duration if args.duration is not None else (1.0 if args.smoke else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if args.smoke else 2.0)
    wrk = find_wrk()
    if wrk is None:
        print(f"wrk is not installed; run {BENCHMARKS_DIR / 'setup.sh'} first", file=sys.stderr)
        return 2
    os.environ.update(BLAS_ONE_THREAD)  # inherited by the servers, their replicas and Ray's workers
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="fnserve-batching-"))
    print(f"Logs and server homes: {work_dir}")
    command = shlex.join(["benchmarks/batching.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        points, versions = run(wrk, args, work_dir)
    except (TargetError, WaitTimeout) as exc:
        print(f"\nBenchmark failed: {exc}\nLogs: {work_dir}", file=sys.stderr)
        return 1
    markdown = results_markdown(points, versions, args, command)
    output: Path | None = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is None:
        print("\n" + markdown.split("## Results", 1)[1].strip())
    else:
        write_results(output, markdown, marker=NOTES_MARKER)
        print(f"\nWrote {output}")
    print(f"Logs: {work_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
