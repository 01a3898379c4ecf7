"""The cold-start benchmark works end to end: a real server, one deploy, one call from zero (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

# `benchmarks/` sits next to `tests/` at the repo root, outside the installed package.
from benchmarks.cold_start import NOTES_MARKER, imported_by, main, options_from_args, parse_args, parse_importtime


def test_options_for_smoke_run_one_round_of_each() -> None:
    options = options_from_args(parse_args(["--smoke"]))

    assert (options.rounds, options.import_runs) == (1, 1)


def test_parse_importtime_reads_levels_and_direct_imports() -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:        10 |         10 |     leaf\n"
        "import time:        20 |         30 |   child\n"
        "import time:         5 |          5 |   other\n"
        "import time:       100 |        135 | top\n"
    )

    modules = parse_importtime(text)

    assert [(m.name, m.level, m.self_us, m.cumulative_us) for m in modules][-1] == ("top", 0, 100, 135)
    assert [m.name for m in imported_by(modules, "top")] == ["other", "child"]


def _cells(text: str, label: str) -> list[float]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [float(cell.strip().replace(",", "")) for cell in row.strip("|").split("|")[1:]]


@pytest.mark.timeout(180)
def test_smoke_run_measures_one_of_each_and_writes_results_keeping_notes(tmp_path: Path) -> None:
    """
    1. A results file exists with hand-written notes below the marker.
    2. Run the smoke settings: start `fnserve server`, upload and deploy the hello service once, deploy the
       scaled-to-zero service and call it once from zero replicas, time the worker's imports once, write the results.
    3. The file holds the tables with positive numbers, and the notes are kept.
    """
    output = tmp_path / "COLD_START_RESULTS.md"
    output.write_text(f"old results\n\n{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")

    code = main(["--smoke", "--output", str(output), "--work-dir", str(tmp_path / "work")])

    assert code == 0
    text = output.read_text()
    assert "old results" not in text
    assert text.endswith(f"{NOTES_MARKER}\n\n## Notes\n\nkept by hand\n")
    for label in (
        "**POST /v1/services → ACTIVE**",
        "**POST /v1/services → first 200**",
        "**call → 200**",
        "replica `cold_start_ms` (process start → READY)",
        '`python -c "import fnserve.runtime.worker"`: wall',
    ):
        cells = _cells(text, label)
        assert len(cells) == 3
        assert all(value > 0 for value in cells), (label, cells)
    assert "| `fnserve` |" in text  # the import breakdown by package
