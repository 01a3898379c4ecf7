"""Run fnserve's benchmarks side by side with the bare app and the peers, print the tables, and write RESULTS.md.

    .venv/bin/python benchmarks/run.py              # full run (about ten minutes); rewrites benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --smoke      # a few seconds at concurrency 1, no peers; prints only
    .venv/bin/python benchmarks/run.py --no-peers --targets bare,fnserve-r1 --concurrency 16 --duration 30
    .venv/bin/python benchmarks/run.py --peers litserve --scenarios noop

Needs wrk (`benchmarks/setup.sh` installs it) and, for the fnserve targets, fnserve installed in this venv.
The peers (LitServe, BentoML, Ray Serve) are installed on first use, each into its own venv under the peer
cache (`--peer-cache`, `$FNSERVE_BENCH_CACHE`, default ~/.cache/fnserve-bench; about 1 GB, a minute or two),
and reused after; a peer that fails to install or start is reported as failed and the run goes on.
Logs of every server, install and deploy are kept in the work directory printed at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/run.py`: import `benchmarks` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.goals import evaluate_goals
from benchmarks.peer_envs import CACHE_ENV_VAR, default_cache_dir
from benchmarks.peer_targets import PEERS, peer_target
from benchmarks.procs import WaitTimeout
from benchmarks.report import describe_environment, results_markdown, summary_markdown, write_results
from benchmarks.scenarios import SCENARIOS
from benchmarks.suite import SuiteOptions, run_suite
from benchmarks.targets import BENCHMARKS_DIR, TARGETS, TargetError
from benchmarks.wrk import WrkError, find_wrk

DEFAULT_OUTPUT = BENCHMARKS_DIR / "RESULTS.md"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[1:]),
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few-second sanity run: 1 s at concurrency 1, no peers, no file"
    )
    parser.add_argument("--duration", type=float, help="seconds measured per point (default 8; smoke 1)")
    parser.add_argument("--warmup", type=float, help="seconds of discarded load before each point (default 2; smoke 0)")
    parser.add_argument(
        "--concurrency", type=_split, help="comma-separated connection counts (default 1,16,64; smoke 1)"
    )
    parser.add_argument(
        "--targets", type=_split, default=list(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument(
        "--scenarios", type=_split, default=list(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}"
    )
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument(
        "--peers",
        type=_split,
        help=f"comma-separated peers to compare, of {', '.join(PEERS)} (default all; smoke none)",
    )
    peers.add_argument("--no-peers", action="store_true", help="compare with no peer (same as --peers '')")
    parser.add_argument(
        "--peer-cache",
        type=Path,
        default=default_cache_dir(),
        help=f"where the peers' venvs live (default ${CACHE_ENV_VAR} or ~/.cache/fnserve-bench)",
    )
    parser.add_argument(
        "--first-chunk-samples", type=int, help="streams timed one by one for the first chunk (default 100; smoke 5)"
    )
    parser.add_argument("--output", type=Path, help=f"results file (default {DEFAULT_OUTPUT}; none when --smoke)")
    parser.add_argument("--work-dir", type=Path, help="where logs and server homes go (default: a new temp dir)")
    parser.add_argument("--check-goals", action="store_true", help="exit with 1 when a goal fails")
    args = parser.parse_args(argv)
    if args.no_peers:
        args.peers = []
    elif args.peers is None:
        args.peers = [] if args.smoke else list(PEERS)
    for option, known in (("targets", TARGETS), ("scenarios", SCENARIOS), ("peers", PEERS)):
        unknown = [name for name in getattr(args, option) if name not in known]
        if unknown:
            parser.error(f"unknown --{option} {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.concurrency is not None and not all(c.isdigit() and int(c) > 0 for c in args.concurrency):
        parser.error(f"--concurrency takes positive integers, got {','.join(args.concurrency)}")
    return args


def options_from_args(args: argparse.Namespace) -> SuiteOptions:
    smoke: bool = args.smoke
    concurrency: list[str] = args.concurrency or (["1"] if smoke else ["1", "16", "64"])
    samples: int | None = args.first_chunk_samples
    return SuiteOptions(
        targets=[TARGETS[name] for name in args.targets]
        + [peer_target(PEERS[name], args.peer_cache) for name in args.peers],
        scenarios=[SCENARIOS[name] for name in args.scenarios],
        concurrencies=[int(c) for c in concurrency],
        duration_s=args.duration if args.duration is not None else (1.0 if smoke else 8.0),
        warmup_s=args.warmup if args.warmup is not None else (0.0 if smoke else 2.0),
        work_dir=args.work_dir or Path(tempfile.mkdtemp(prefix="fnserve-bench-")),
        settle_s=0.5 if smoke else 3.0,
        first_chunk_samples=samples if samples is not None else (5 if smoke else 100),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print(
            f"wrk is not installed. Install it with `{BENCHMARKS_DIR / 'setup.sh'}` (apt-get install -y wrk), "
            "then run this again.",
            file=sys.stderr,
        )
        return 2
    options = options_from_args(args)
    unavailable = [(target.name, reason) for target in options.targets if (reason := target.available()) is not None]
    if unavailable:
        for name, reason in unavailable:
            print(f"Target {name!r} cannot run here: {reason}", file=sys.stderr)
        runnable = [name for name in args.targets if name not in dict(unavailable)]
        if runnable:
            print(f"To run without it: --targets {','.join(runnable)}", file=sys.stderr)
        return 2

    command = shlex.join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"Logs and server homes: {options.work_dir}")
    try:
        result = run_suite(options)
    except (TargetError, WrkError, WaitTimeout) as exc:
        print(f"\nBenchmark failed: {exc}\nLogs: {options.work_dir}", file=sys.stderr)
        return 1

    print("\n" + summary_markdown(result))
    output: Path | None = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is not None:
        write_results(output, results_markdown(result, describe_environment(wrk), command=command))
        print(f"\nWrote {output}")
    print(f"Logs: {options.work_dir}")
    failed = [outcome for outcome in evaluate_goals(result) if outcome.passed is False]
    return 1 if failed and args.check_goals else 0


if __name__ == "__main__":
    sys.exit(main())
