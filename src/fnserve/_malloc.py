"""Large buffers reused in place: glibc's allocator tuned for a process that moves files and images.

By default glibc gives every allocation from 128 KiB up fresh pages of its own (mmap) and returns them on free, and
gives memory back at the top of its heap once 128 KiB of it are free. Each 1 MiB upload or answer then costs page
faults for every copy of it (a read buffer, a frame, the bytes handed to the endpoint): on the benchmark machine
1 MiB answers went from 110–210 to 500–670 req/s through one replica once these buffers came from the heap and
stayed there. Buffers up to `MMAP_THRESHOLD_BYTES` now come from the heap, and up to `TRIM_THRESHOLD_BYTES` of free
heap is kept for the next ones: an idle process may keep that much more than it uses after a burst of large bodies.
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024  # above the default 5 MiB body limit
TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_large_buffers() -> bool:
    """Tune this process's allocator as above; False where there is no glibc `mallopt` (macOS, musl's stub)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
