"""Markdown for the results files: tables, and rewriting a file above its hand-written notes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1) -> str:
    """A Markdown table; columns from `numeric_from` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


NOTES_MARKER = (
    "<!-- notes: everything below this line is written by hand; run.py keeps it when it rewrites this file -->"
)
DEFAULT_NOTES = "## Notes\n\n_Observations, caveats and explanations of the numbers above, written by hand._\n"


def write_results(path: Path, generated: str, *, marker: str = NOTES_MARKER) -> None:
    """Write `generated`, then `marker` and whatever was below it in the existing file (or a notes stub)."""
    notes = DEFAULT_NOTES
    if path.exists():
        previous = path.read_text()
        if marker in previous:
            notes = previous.split(marker, 1)[1].lstrip("\n")
    path.write_text(generated.rstrip("\n") + "\n\n" + marker + "\n\n" + notes)
