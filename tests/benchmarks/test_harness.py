"""The benchmark harness works end to end: the bare app under wrk, with the smoke settings (no timing asserted)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# `benchmarks/` sits next to `tests/` at the repo root, outside the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.report import summary_markdown
from benchmarks.run import options_from_args, parse_args
from benchmarks.suite import run_suite

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed; `benchmarks/setup.sh` installs it (apt-get install wrk)"
)


def test_smoke_run_measures_bare_app_throughput_and_latency(tmp_path: Path) -> None:
    """
    1. Parse the smoke command line for the bare target only (1 s at concurrency 1), logs under tmp_path.
    2. Run the suite: start the bare app, check its answer, read its memory, load it with wrk, stop it.
    3. wrk's output parsed into throughput and median latency, without errors, and the tables render.
    """
    args = parse_args(["--smoke", "--targets", "bare", "--work-dir", str(tmp_path)])
    options = options_from_args(args)
    assert (options.duration_s, options.concurrencies) == (1.0, [1])

    result = run_suite(options, log=lambda line: None)

    point = result.point("bare", "noop", 1)
    assert point is not None
    assert point.requests_per_s > 0
    assert point.p50_ms > 0
    assert point.errors == 0
    assert result.targets[0].memory.rss_bytes > 0
    assert "| 1 | bare |" in summary_markdown(result)
