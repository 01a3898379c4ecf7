"""The batching benchmark works end to end: a real server, the model per item and batched under wrk (no timing
asserted: the numbers are the benchmark's business, not the suite's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# `benchmarks/` sits next to `tests/` at the repo root, outside the installed package.
from benchmarks.batching import NOTES_MARKER, main

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed; `benchmarks/setup.sh` installs it (apt-get install wrk)"
)


@pytest.mark.timeout(120)
def test_smoke_run_measures_both_endpoints_and_writes_results_keeping_notes(tmp_path: Path) -> None:
    """
    1. A results file exists with hand-written notes below the marker.
    2. Run the smoke settings: start `fnserve server`, deploy the model service, load /plain and /batched for 1 s
       each at c=64 (each answer checked against the model first), no Ray.
    3. The file holds both rows, the batched one with its mean batch size from /metrics, and the notes are kept.
    """
    output = tmp_path / "BATCHING_RESULTS.md"
    output.write_text(f"old results\n\n{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")

    code = main(["--smoke", "--output", str(output), "--work-dir", str(tmp_path / "work")])

    assert code == 0
    text = output.read_text()
    assert "old results" not in text
    assert "| fnserve | plain | 64 |" in text
    batched = next(line for line in text.splitlines() if line.startswith("| fnserve | batched | 64 |"))
    mean_batch = float(batched.split("|")[8])
    assert mean_batch >= 1
    assert text.endswith(f"{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")
