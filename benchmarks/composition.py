"""The handle benchmark: what one call from a service to another adds, fnserve's handle beside Ray Serve's.

    .venv/bin/python benchmarks/composition.py              # fnserve and Ray Serve; rewrites COMPOSITION_RESULTS.md
    .venv/bin/python benchmarks/composition.py --no-ray     # fnserve only
    .venv/bin/python benchmarks/composition.py --smoke      # few calls, prints only

Each framework serves a no-op service and a caller holding a handle on it (`benchmarks/apps/composition_app.py`,
`benchmarks/peers/ray_handles_app.py`). Two measures of the hop, both at concurrency 1:
- in the replica: the caller times `n` handle calls to the no-op (`/loop`), so no HTTP client is in the way;
- over HTTP: `POST /via` (one handle call) minus `POST /local` (the same caller answering by itself): what the hop
  adds to a request; and beside it `POST` to the no-op directly through the gateway, the call the hop stands for.
Ray Serve runs from its peer venv (`benchmarks/peer_envs.py`, built on first use: ~1 GB); `--no-ray` skips it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as `python benchmarks/composition.py`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.environment import describe_environment, machine_table, results_header
from benchmarks.markdown import markdown_table, write_results
from benchmarks.peer_envs import PeerInstallError, default_cache_dir, ensure_env, installed_versions, peer_env
from benchmarks.peer_targets import RAY_SERVE
from benchmarks.procs import free_port, start_process, stop_process_tree, wait_until
from benchmarks.scenarios import BENCHMARK_OWNER_KEY
from benchmarks.targets import BENCHMARKS_DIR, fnserve_target, launch

DEFAULT_OUTPUT = BENCHMARKS_DIR / "COMPOSITION_RESULTS.md"
MARKER = (
    "<!-- notes: everything below this line is written by hand; composition.py keeps it when it rewrites this file -->"
)
RAY_APP = BENCHMARKS_DIR / "peers" / "ray_handles_app.py"
GOAL_ADDED_P50_MS = 0.3
GOAL_RAY_FACTOR = 10.0


@dataclass(frozen=True)
class Latencies:
    """Milliseconds, sorted."""

    values: list[float]

    def pct(self, q: float) -> float:
        index = min(len(self.values) - 1, max(0, round(q / 100 * len(self.values)) - 1))
        return self.values[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.values)


@dataclass(frozen=True)
class Measured:
    framework: str
    in_replica: Latencies  # one handle call, timed inside the caller
    direct: Latencies  # the no-op called over HTTP directly
    local: Latencies  # the caller answering by itself
    via: Latencies  # the caller making one handle call

    @property
    def added_p50(self) -> float:
        return self.via.p50 - self.local.p50


def _time_calls(http: httpx.Client, url: str, calls: int, warmup: int) -> Latencies:
    values = []
    for index in range(warmup + calls):
        started = time.perf_counter()
        response = http.post(url, json={})
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if index >= warmup:
            values.append(elapsed)
    return Latencies(sorted(values))


def measure(framework: str, base: str, direct_url: str, calls: int, loop_n: int) -> Measured:
    warmup = max(20, calls // 10)
    with httpx.Client(timeout=60.0, headers={"authorization": f"Bearer {BENCHMARK_OWNER_KEY}"}) as http:
        loop = http.post(f"{base}/loop?n={loop_n}", json={})
        loop.raise_for_status()
        in_replica = Latencies(sorted(value / 1000 for value in loop.json()[loop_n // 10 :]))
        # Interleaved rounds, so a slow moment of this shared machine falls on every measure alike.
        direct: list[float] = []
        local: list[float] = []
        via: list[float] = []
        rounds = 5
        for _ in range(rounds):
            direct += _time_calls(http, direct_url, calls // rounds, warmup // rounds).values
            local += _time_calls(http, f"{base}/local", calls // rounds, warmup // rounds).values
            via += _time_calls(http, f"{base}/via", calls // rounds, warmup // rounds).values
    return Measured(framework, in_replica, *(Latencies(sorted(v)) for v in (direct, local, via)))


@contextmanager
def fnserve_running(work_dir: Path) -> Iterator[str]:
    import fnserve as fs
    from benchmarks.apps.composition_app import bench_caller

    with launch(fnserve_target(1), port=free_port(), work_dir=work_dir) as running:
        with fs.deploy(bench_caller, url=running.url, api_key=BENCHMARK_OWNER_KEY)() as deployment:
            deployment.wait(timeout_s=120)
        yield running.url


@contextmanager
def ray_running(work_dir: Path) -> Iterator[str]:
    venv = peer_env(RAY_SERVE.venv_name or RAY_SERVE.name, default_cache_dir())
    # A venv that has Ray is used as it is, whatever else it holds (other benchmarks add packages to it): rebuilding
    # it for a stamp that differs would take minutes, and pull it from under a benchmark using it.
    if not venv.python.exists():
        ensure_env(venv, RAY_SERVE.requirements, log_path=work_dir / "ray-install.log")
    port = free_port()
    log = work_dir / "ray.log"
    process = start_process([str(venv.python), str(RAY_APP), "--port", str(port)], log_path=log)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool | None:
            if process.poll() is not None:
                raise RuntimeError(f"Ray Serve exited; see {log}")
            try:
                return httpx.post(f"{url}/local", json={}, timeout=1.0).status_code == 200 or None
            except httpx.HTTPError:
                return None

        wait_until(up, timeout_s=180, what="Ray Serve to answer POST /local", interval_s=0.2)
        yield url
    finally:
        stop_process_tree(process)


def ray_versions() -> str:
    venv = peer_env(RAY_SERVE.venv_name or RAY_SERVE.name, default_cache_dir())
    versions = installed_versions(venv, ("ray",))
    return versions.get("ray", "?")


def report(results: list[Measured], *, command: str, started_at: datetime, ray_note: str | None) -> str:
    environment = describe_environment(None)
    rows = []
    for m in results:
        rows.append(
            [
                m.framework,
                f"{m.in_replica.p50:.3f}",
                f"{m.in_replica.pct(90):.3f}",
                f"{m.in_replica.pct(99):.3f}",
                f"{m.direct.p50:.3f}",
                f"{m.local.p50:.3f}",
                f"{m.via.p50:.3f}",
                f"{m.added_p50:.3f}",
            ]
        )
    table = markdown_table(
        [
            "framework",
            "handle call p50 (in replica)",
            "p90",
            "p99",
            "direct HTTP call p50",
            "caller alone p50",
            "caller + 1 handle call p50",
            "added by the hop, p50",
        ],
        rows,
    )
    fnserve = next((m for m in results if m.framework == "fnserve"), None)
    ray = next((m for m in results if m.framework.startswith("Ray")), None)
    goals = []
    if fnserve is not None:
        hop = fnserve.in_replica.p50
        goals.append(
            f"- fnserve's hop, p50: {hop:.3f} ms in the replica, {fnserve.added_p50:.3f} ms added over HTTP; goal "
            f"< {GOAL_ADDED_P50_MS} ms: {'met' if max(hop, fnserve.added_p50) < GOAL_ADDED_P50_MS else 'not met'}"
        )
    if fnserve is not None and ray is not None:
        factor = ray.in_replica.p50 / fnserve.in_replica.p50
        added = ray.added_p50 / fnserve.added_p50 if fnserve.added_p50 > 0 else float("inf")
        verdict = "not met"
        if min(factor, added) >= GOAL_RAY_FACTOR:
            verdict = "met"
        elif max(factor, added) >= GOAL_RAY_FACTOR:
            verdict = "met over HTTP only" if added >= GOAL_RAY_FACTOR else "met in the replica only"
        goals.append(
            f"- Ray Serve's handle call, p50: {ray.in_replica.p50:.3f} ms in the replica ({factor:.1f}× fnserve's), "
            f"{ray.added_p50:.3f} ms added over HTTP ({added:.1f}× fnserve's); goal ≥ {GOAL_RAY_FACTOR:g}×: "
            f"{verdict}"
        )
    if ray_note:
        goals.append(f"- Ray Serve: {ray_note}")
    header = results_header(
        "Handles: one service calling another",
        started_at,
        environment,
        command=command,
        script="benchmarks/composition.py",
    )
    return f"""{header}

Milliseconds, concurrency 1, one replica of each service. "In replica": the caller times its own handle calls to a
no-op (`/loop`); the HTTP columns are measured by a client on this machine: the no-op called directly, the caller
answering by itself (`/local`) and the caller making one handle call (`/via`); their difference is what the hop adds.

{table}

{chr(10).join(goals)}

{machine_table(environment)}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="HTTP calls per measure")
    parser.add_argument("--loop", type=int, default=5000, help="handle calls timed inside the replica")
    parser.add_argument("--no-ray", action="store_true", help="skip Ray Serve")
    parser.add_argument("--smoke", action="store_true", help="a few calls, print only")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.loop = 100, 200
    started_at = datetime.now(UTC)
    results: list[Measured] = []
    ray_note = None
    with tempfile.TemporaryDirectory(prefix="fnserve-composition-") as tmp:
        work_dir = Path(tmp)
        with fnserve_running(work_dir) as url:
            results.append(measure("fnserve", f"{url}/bench-caller", f"{url}/bench-noop/noop", args.calls, args.loop))
        if args.no_ray:
            ray_note = "skipped (--no-ray)"
        else:
            try:
                with ray_running(work_dir) as url:
                    name = f"Ray Serve {ray_versions()}"
                    results.append(measure(name, url, f"{url}/local", args.calls, args.loop))
                ray_note = "`direct HTTP call` is the caller's own `/local` (Ray's no-op deployment has no route)"
            except (PeerInstallError, RuntimeError, OSError) as exc:
                ray_note = f"not measured: {exc}"
    command = "python benchmarks/composition.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(results, command=command.strip(), started_at=started_at, ray_note=ray_note)
    if args.smoke:
        print(text)
        return
    write_results(args.output, text, marker=MARKER)
    print(text)


if __name__ == "__main__":
    main()
