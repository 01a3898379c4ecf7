"""The job-queue benchmark works end to end: a real server, jobs submitted by wrk and drained (no timing asserted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# `benchmarks/` sits next to `tests/` at the repo root, outside the installed package.
from benchmarks.jobs import NOTES_MARKER, main, options_from_args, parse_args

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed; `benchmarks/setup.sh` installs it (apt-get install wrk)"
)


def test_options_for_smoke_run_one_replica_count_for_one_second() -> None:
    options = options_from_args(parse_args(["--smoke"]))

    assert (options.replicas, options.duration_s, options.warmup_s, options.concurrency) == ([1], 1.0, 0.0, 16)


@pytest.mark.timeout(120)
def test_smoke_run_completes_jobs_and_writes_results_keeping_notes(tmp_path: Path) -> None:
    """
    1. A results file exists with hand-written notes below the marker.
    2. Run the smoke settings: start `fnserve server`, deploy the no-op service, submit jobs with wrk for 1 s at
       one replica, drain the queue, read the jobs back, write the results.
    3. The file holds the one-replica table with completed jobs, and the notes are kept.
    """
    output = tmp_path / "JOBS_RESULTS.md"
    output.write_text(f"old results\n\n{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")

    code = main(["--smoke", "--output", str(output), "--work-dir", str(tmp_path / "work")])

    assert code == 0
    text = output.read_text()
    assert "old results" not in text
    assert text.endswith(f"{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")
    assert "### 1 replica\n" in text
    completed = next(line for line in text.splitlines() if line.startswith("| COMPLETED |"))
    assert int(completed.split("|")[2].strip().replace(",", "")) > 0
    assert "| wrk non-2xx / socket errors | 0 / 0 |" in text
