"""The benchmark harness works end to end: the bare app and fnserve under wrk with the smoke settings, every scenario,
and a peer that fails is reported while the run goes on. No timing is asserted; peers are never installed here."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# `benchmarks/` sits next to `tests/` at the repo root, outside the installed package.
from benchmarks.goals import evaluate_goals
from benchmarks.peer_envs import PeerInstallError
from benchmarks.peer_targets import PEERS
from benchmarks.report import summary_markdown
from benchmarks.run import options_from_args, parse_args
from benchmarks.scenarios import NOOP
from benchmarks.suite import SuiteOptions, run_suite
from benchmarks.targets import BARE, NOOP_READY, Target

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed; `benchmarks/setup.sh` installs it (apt-get install wrk)"
)


def test_peers_are_all_compared_by_default_and_none_in_smoke_runs() -> None:
    """
    1. Parse the default command line, the smoke one, and one with --no-peers.
    2. The default compares every peer; smoke and --no-peers compare none; --peers picks.
    """
    assert parse_args([]).peers == list(PEERS)
    assert parse_args(["--smoke"]).peers == []
    assert parse_args(["--no-peers"]).peers == []
    assert parse_args(["--smoke", "--peers", "litserve"]).peers == ["litserve"]
    with pytest.raises(SystemExit):
        parse_args(["--peers", "tornado"])


@needs_wrk
def test_smoke_run_measures_every_scenario_on_bare_app_and_fnserve(tmp_path: Path) -> None:
    """
    1. Parse the smoke command line for the bare app and fnserve with one replica (1 s at concurrency 1).
    2. Run the suite: start both, deploy the benchmark service once, check every scenario's answer, read idle
       CPU and memory, probe the stream's first chunk, load each scenario with wrk, stop both.
    3. Every point has throughput, latency and CPU per request without errors; the stream has first-chunk times;
       the deploy is timed; the goals are evaluated and the tables render.
    """
    args = parse_args(["--smoke", "--targets", "bare,fnserve-r1", "--work-dir", str(tmp_path)])
    options = options_from_args(args)
    assert (options.duration_s, options.concurrencies, args.peers) == (1.0, [1], [])

    result = run_suite(options, log=lambda line: None)

    assert result.failures == {}
    for target in ("bare", "fnserve-r1"):
        for scenario in ("noop", "echo", "stream"):
            point = result.measured(target, scenario, 1)
            assert point is not None, (target, scenario)
            assert point.result.requests_per_s > 0
            assert point.result.p50_ms > 0
            assert point.result.errors == 0
            assert point.cpu_ms_per_request is not None
            assert point.cpu_ms_per_request > 0
        assert (target, "stream") in result.first_chunks
        summary = result.summary(target)
        assert summary is not None
        assert summary.memory.rss_bytes > 0
        assert summary.started_s > 0
        assert target in result.loaded_memory
    fnserve = result.summary("fnserve-r1")
    assert fnserve is not None
    assert list(fnserve.deploys) == ["noop"]  # one service serves all three scenarios
    assert fnserve.memory.process_count == 2  # the server and one replica
    outcomes = {outcome.goal.description: outcome for outcome in evaluate_goals(result)}
    assert outcomes["No-op p50 at concurrency 1 < 0.5 ms"].passed is not None
    assert outcomes["No-op throughput at concurrency 16 ≥ 50% of the bare app's"].passed is None  # c=16 not run
    text = summary_markdown(result)
    assert "| 1 | bare |" in text
    assert "| fnserve-r1 | bare |" in text  # the ratio tables
    assert "chunks/s" in text


@needs_wrk
def test_peer_that_fails_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    """
    1. Run the bare app beside two fake peers: one whose install fails, one whose process exits at once.
    2. Both are recorded as failed with the reason, and the bare app is still measured.
    3. The tables show each failed peer as "failed: <reason>".
    """

    def failing_install(work_dir: Path) -> dict[str, str]:
        raise PeerInstallError("installing nothing-such for uninstallable failed with code 1")

    uninstallable = Target(
        name="uninstallable",
        description="a peer whose install fails",
        command=lambda port, home: [sys.executable, "-c", "pass"],
        ready=NOOP_READY,
        peer=True,
        install=failing_install,
    )
    crashing = Target(
        name="crashing",
        description="a peer whose process exits at once",
        command=lambda port, home: [sys.executable, "-c", "raise SystemExit(3)"],
        ready=NOOP_READY,
        peer=True,
        install=lambda work_dir: {"crashing": "0.0"},
    )
    options = SuiteOptions(
        targets=[BARE, uninstallable, crashing],
        scenarios=[NOOP],
        concurrencies=[1],
        duration_s=1.0,
        warmup_s=0.0,
        work_dir=tmp_path,
        settle_s=0.1,
    )

    result = run_suite(options, log=lambda line: None)

    assert result.failures["uninstallable"].startswith("install failed: installing nothing-such")
    assert result.failures["crashing"].startswith("start failed: Target 'crashing' exited with code 3")
    assert result.point("bare", "noop", 1) is not None
    text = summary_markdown(result)
    assert "| uninstallable | failed: install failed:" in text
    assert "| crashing | failed: start failed:" in text
