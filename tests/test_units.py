"""Parsing of memory sizes and durations."""

from __future__ import annotations

import pytest

from fnserve._units import format_duration, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MB", 512_000_000), ("4GB", 4_000_000_000), ("2GiB", 2 * 1024**3), ("1 kb", 1000), (1024, 1024)],
)
def test_parse_memory(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("30 minutes", 1800), ("2h", 7200), ("1h 30m", 5400), ("1 day", 86400), (12.5, 12.5)],
)
def test_parse_duration(text: str | float, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "5 parsecs", "", "10 minutes later"])
def test_parse_duration_refuses_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="'30 minutes'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "0.2s"), (1.5, "1.5s"), (2, "2s"), (90, "1m 30s"), (5400, "1h 30m"), (7200, "2h"), (86_461, "1d 1m 1s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.05)
