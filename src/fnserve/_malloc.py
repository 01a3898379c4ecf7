"""Large buffers reused in place: glibc's allocator tuned for a process that moves files and images.

By default glibc gives every allocation from 128 KiB up fresh pages of its own (mmap) and returns them on free, and
gives memory back at the top of its heap once 128 KiB of it are free. Each 1 MiB upload or answer then costs page
faults for every copy of it (a read buffer, a frame, the bytes handed to the endpoint): on the benchmark machine
1 MiB answers went from 110–210 to 500–800 req/s through one replica once these buffers came from the heap and
stayed there. Buffers up to `MMAP_THRESHOLD_BYTES` now come from the heap, and up to `TRIM_THRESHOLD_BYTES` of free
heap is kept for the next ones while the process is busy; every `TRIM_EVERY_S` what is free goes back to the system
(`malloc_trim`), so an idle process does not keep a burst's buffers (30 MiB more RSS after two 1 MiB calls without it).
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from typing import Any

MMAP_THRESHOLD_BYTES = 8 * 1024 * 1024  # above the default 5 MiB body limit
TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_EVERY_S = 10.0  # a busy process re-faults what was given back once per period: well under 1% of its time
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_large_buffers(loop: asyncio.AbstractEventLoop) -> bool:
    """Tune this process's allocator as above, giving free memory back every `TRIM_EVERY_S` on `loop`; False where
    there is no glibc `mallopt` (macOS, musl's stub), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    malloc_trim.argtypes = (ctypes.c_size_t,)
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return False
    loop.call_later(TRIM_EVERY_S, _trim, loop, malloc_trim)
    return True


def _trim(loop: asyncio.AbstractEventLoop, malloc_trim: Any) -> None:
    malloc_trim(0)
    loop.call_later(TRIM_EVERY_S, _trim, loop, malloc_trim)
