"""Parsing of the human units users write in options: memory sizes and durations."""

from __future__ import annotations

import math
import re

_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}

_DURATION_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


def parse_memory(value: int | float | str, *, field: str = "memory") -> int:
    """Bytes from `1073741824`, `"1GB"`, `"512 MiB"`. Raises ValueError naming the value and the fix."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"`{field}` must be a size like '4GB' or a number of bytes, got {value!r}")
    if isinstance(value, int | float):
        amount, unit = value, ""
    else:
        match = _QUANTITY.match(value)
        if match is None or match.group(2).lower() not in _MEMORY_UNITS:
            raise ValueError(
                f"`{field}` must be a size like '512MB', '4GB' or '2GiB', got {value!r}; "
                f"known units: {', '.join(sorted({u.upper() for u in _MEMORY_UNITS if u}))}"
            )
        amount, unit = float(match.group(1)), match.group(2).lower()
    size = amount * _MEMORY_UNITS[unit]
    if not 0 < size < math.inf:  # NaN and infinity too: Python's JSON parser accepts both
        raise ValueError(f"`{field}` must be > 0 and finite, got {value!r}")
    return int(size)


def parse_duration(value: int | float | str, *, field: str = "time_limit") -> float:
    """Seconds from `90`, `"90s"`, `"30 minutes"`, `"2h"`, `"1h 30m"`. Raises ValueError naming the fix."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"`{field}` must be a duration like '30 minutes' or a number of seconds, got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond a float's range
            seconds = math.inf
    else:
        text = value.strip().lower()
        parts = _DURATION_PART.findall(text)
        leftover = _DURATION_PART.sub("", text).replace(",", "").replace("and", "").strip()
        if not parts or leftover or any(unit not in _DURATION_UNITS for _, unit in parts if unit):
            raise ValueError(
                f"`{field}` must be a duration like '90s', '30 minutes', '2h' or a number of seconds, got {value!r}"
            )
        seconds = sum(float(amount) * _DURATION_UNITS[unit or "s"] for amount, unit in parts)
    if not 0 < seconds < math.inf:
        raise ValueError(f"`{field}` must be > 0 and finite, got {value!r}; use None for no limit")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as people write it, the inverse of `parse_duration`: `"2h"`, `"1h 30m"`, `"45s"`, `"1.5s"`.

    Example:
        >>> format_duration(5400)
        '1h 30m'
    """
    if seconds < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def format_memory(size: int) -> str:
    """A memory size in the decimal units `parse_memory` reads: `"612 MB"`, `"1.5 GB"`.

    Example:
        >>> format_memory(612_000_000)
        '612 MB'
    """
    for unit, scale in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= scale:
            amount = size / scale
            return (f"{amount:.0f}" if amount >= 100 else f"{amount:.1f}".rstrip("0").rstrip(".")) + f" {unit}"
    return f"{size} B"
