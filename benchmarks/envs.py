"""The environments benchmark: how fast a service gets its own packages.

    .venv/bin/python benchmarks/envs.py            # 3 rounds; rewrites ENVS_RESULTS.md
    .venv/bin/python benchmarks/envs.py --smoke    # 1 round, prints only
    .venv/bin/python benchmarks/envs.py --rounds 5 --output /tmp/envs.md

1. A cold build of scikit-learn, side by side and interleaved: fnserve's build (uv: resolve, venv, install, with an
   empty uv cache) against `python -m venv` + `pip install` of the same pinned set with no pip cache. Then both again
   with their caches warm (a new environment, packages already downloaded). Goal: fnserve ≥ 5× faster cold.
2. A deploy whose environment is already built: `POST /v1/services` → ACTIVE, for a scikit-learn service under a new
   name each round (a new version and a replica that imports scikit-learn). Goal: < 1 s.
3. `fnserve deploy-model` → first prediction: a scikit-learn model saved with skops, deployed with no code, its
   environment built, then called once (first round with a cold fnserve environments folder, uv cache warm).

Both sides download from PyPI, so the network is in every number; rounds interleave the two so it weighs on both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/envs.py`: import `benchmarks` from the repo root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.environment import describe_environment, results_header
from benchmarks.markdown import markdown_table, write_results
from benchmarks.targets import BENCHMARKS_DIR
from fnserve.client.deployment import Deployment
from fnserve.envs.builder import EnvBuilder
from fnserve.envs.requirements import EnvironmentSpec
from fnserve.envs.runtime import server_python, uv_executable

DEFAULT_OUTPUT = BENCHMARKS_DIR / "ENVS_RESULTS.md"
NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; envs.py keeps it when it rewrites this file -->"
)
REQUIREMENTS = ["scikit-learn==1.9.1"]
GOAL_COLD_RATIO = 5.0
GOAL_CACHED_ACTIVE_S = 1.0
DEPLOY_TIMEOUT_S = 600.0  # a deploy-model builds scikit-learn's environment first


@dataclass
class Results:
    fnserve_cold_s: list[float] = field(default_factory=list)
    pip_cold_s: list[float] = field(default_factory=list)
    fnserve_warm_s: list[float] = field(default_factory=list)
    pip_warm_s: list[float] = field(default_factory=list)
    cached_active_s: list[float] = field(default_factory=list)
    cached_active_importing_s: list[float] = field(default_factory=list)
    model_first_prediction_s: list[float] = field(default_factory=list)


def wait_for_state(deployment: Deployment, *, interval_s: float, timeout_s: float = DEPLOY_TIMEOUT_S) -> None:
    """Poll until ACTIVE or ERROR (finely: the time to ACTIVE is what is measured); TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while deployment.refresh().state not in ("ACTIVE", "ERROR"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{deployment.name} still {deployment.state} after {timeout_s:g} s: {deployment.reason}")
        time.sleep(interval_s)


def fnserve_build(envs_dir: Path, uv_cache: Path) -> float:
    """fnserve's own build path (EnvBuilder: resolve with uv, make the venv, install), timed end to end."""
    os.environ["UV_CACHE_DIR"] = str(uv_cache)
    started = time.perf_counter()
    built = asyncio.run(EnvBuilder(envs_dir).ensure(EnvironmentSpec(REQUIREMENTS, server_python())))
    seconds = time.perf_counter() - started
    assert not built.cached
    return seconds


def pip_build(venv: Path, pip_cache: Path | None) -> float:
    """`python -m venv` + `pip install` of the same set, as users do it; no pip configuration of this machine."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_") or key == "PIP_CERT"}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    cache = ["--no-cache-dir"] if pip_cache is None else ["--cache-dir", str(pip_cache)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *cache, *REQUIREMENTS], check=True, env=env)
    return time.perf_counter() - started


def cached_deploys(rounds: int, envs_dir: Path, work: Path) -> tuple[list[float], list[float]]:
    """Deploy → ACTIVE for services whose environment is built already, a new name each round: one whose initializer
    imports nothing (what fnserve adds), one whose initializer imports scikit-learn (plus scikit-learn's own import)."""
    import fnserve as fs
    from fnserve.settings import Settings
    from fnserve.testing import run_server

    def plain() -> dict[str, object]:
        return {}

    def importing() -> dict[str, object]:
        import sklearn

        return {"version": sklearn.__version__}

    def active_s(url: str, service: fs.Service[dict[str, object]]) -> float:
        started = time.perf_counter()
        deployment = fs.deploy(service, url=url)()
        wait_for_state(deployment, interval_s=0.005)
        seconds = time.perf_counter() - started
        assert deployment.state == "ACTIVE", deployment.reason
        deployment.close()
        return seconds

    platform, with_import = [], []
    with run_server(home=work / "home", settings=Settings(envs_dir=envs_dir)) as url:
        for index in range(rounds):
            platform.append(active_s(url, fs.service(name=f"plain-{index}", requirements=REQUIREMENTS)(plain)))
            with_import.append(
                active_s(url, fs.service(name=f"importing-{index}", requirements=REQUIREMENTS)(importing))
            )
    return platform, with_import


def model_first_prediction(work: Path, envs_dir: Path) -> float:
    """`fs.deploy_model` of a skops file (a logistic regression on iris) → its first /predict answer, on a server
    with an empty environments folder: the build of its environment (uv's cache warm) is in the time."""
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import fnserve as fs
    from fnserve.settings import Settings
    from fnserve.testing import run_server

    features, labels = load_iris(return_X_y=True)
    path = work / "iris.skops"
    work.mkdir(parents=True, exist_ok=True)
    skops.io.dump(LogisticRegression(max_iter=1000).fit(features, labels), path)
    with run_server(home=work / "home", settings=Settings(envs_dir=envs_dir)) as url:
        started = time.perf_counter()
        with fs.deploy_model(path, name="iris", url=url) as deployment:
            wait_for_state(deployment, interval_s=0.01)
            answer = deployment.predict(rows=[[5.1, 3.5, 1.4, 0.2]])
        seconds = time.perf_counter() - started
    assert answer == {"predictions": [0]}, answer
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rounds: int, work: Path, with_model: bool) -> Results:
    results = Results()
    for index in range(rounds):
        print(f"round {index + 1}/{rounds}: cold builds")
        results.fnserve_cold_s.append(fnserve_build(work / f"envs-cold-{index}", work / f"uv-cache-{index}"))
        results.pip_cold_s.append(pip_build(work / f"pip-cold-{index}", None))
        print(f"round {index + 1}/{rounds}: warm-cache builds")
        results.fnserve_warm_s.append(fnserve_build(work / f"envs-warm-{index}", work / "uv-cache-0"))
        pip_cache = work / "pip-cache"
        if index == 0:
            pip_build(work / "pip-prime", pip_cache)  # fills pip's cache once
        results.pip_warm_s.append(pip_build(work / f"pip-warm-{index}", pip_cache))
    print("cached deploys")
    results.cached_active_s, results.cached_active_importing_s = cached_deploys(
        max(rounds, 3), work / "envs-cold-0", work
    )
    if with_model:
        print("deploy-model → first prediction")
        for index in range(rounds):
            results.model_first_prediction_s.append(
                model_first_prediction(work / f"model-{index}", work / f"m-{index}")
            )
    return results


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _row(measure: str, values: list[float], goal: str = "", met: str = "") -> list[str]:
    return [measure, _s(median(values)), _s(min(values)), _s(max(values)), str(len(values)), goal, met]


def report(results: Results, *, command: str, started_at: datetime) -> str:
    cold_ratio = median(results.pip_cold_s) / median(results.fnserve_cold_s)
    warm_ratio = median(results.pip_warm_s) / median(results.fnserve_warm_s)
    builds = markdown_table(
        ["build of scikit-learn==1.9.1", "fnserve (uv)", "venv + pip", "pip ÷ fnserve", "rounds"],
        [
            [
                "cold caches",
                _s(median(results.fnserve_cold_s)),
                _s(median(results.pip_cold_s)),
                f"{cold_ratio:.1f}×",
                str(len(results.fnserve_cold_s)),
            ],
            [
                "warm caches",
                _s(median(results.fnserve_warm_s)),
                _s(median(results.pip_warm_s)),
                f"{warm_ratio:.1f}×",
                str(len(results.fnserve_warm_s)),
            ],
        ],
    )
    cached_met = "yes" if median(results.cached_active_s) < GOAL_CACHED_ACTIVE_S else "NO"
    rows = [
        _row(
            "deploy → ACTIVE, environment built (initializer imports nothing)",
            results.cached_active_s,
            f"< {GOAL_CACHED_ACTIVE_S:g} s",
            cached_met,
        ),
        _row(
            "deploy → ACTIVE, environment built (initializer imports scikit-learn)", results.cached_active_importing_s
        ),
    ]
    if results.model_first_prediction_s:
        rows.append(_row("deploy-model → first prediction (build included)", results.model_first_prediction_s))
    deploys = markdown_table(["measure", "median", "min", "max", "runs", "goal", "met"], rows)
    goal = "met" if cold_ratio >= GOAL_COLD_RATIO else "NOT met"
    header = results_header(
        "Environments benchmark", started_at, describe_environment(None), command=command, script="benchmarks/envs.py"
    )
    return (
        f"{header}\n\n## Builds, side by side\n\nGoal: fnserve's cold build ≥ {GOAL_COLD_RATIO:g}× faster than venv + "
        f"pip: **{goal}** ({cold_ratio:.1f}×).\n\n{builds}\n\n## Deploys\n\n{deploys}\n"
        f"\nEvery value: {', '.join(_s(v) for v in results.fnserve_cold_s)} (fnserve cold); "
        f"{', '.join(_s(v) for v in results.pip_cold_s)} (pip cold).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one round, print only")
    parser.add_argument("--no-model", action="store_true", help="skip deploy-model")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    rounds = 1 if args.smoke else args.rounds
    uv_executable()  # fails early, with the fix, when uv is missing
    command = shlex.join(["benchmarks/envs.py", *(sys.argv[1:] if argv is None else argv)])
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="fnserve-envs-bench-") as work:
        results = run(rounds, Path(work), with_model=not args.no_model)
    text = report(results, command=command, started_at=started_at)
    print("\n" + text)
    output = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is not None:
        write_results(output, text, marker=NOTES_MARKER)
        print(f"Wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
