"""This process's peak memory (a server run by `run_server` shares it), for tests that bound what a request holds."""

from __future__ import annotations

import re
from pathlib import Path

_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) again from the current RSS (Linux: `clear_refs` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def rss_bytes() -> int:
    found = re.search(r"VmRSS:\s+(\d+) kB", _STATUS.read_text())
    assert found is not None
    return int(found.group(1)) * 1024
