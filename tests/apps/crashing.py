"""Replicas that keep dying: one shortly after it is ready, one in its initializer."""

import os
import sys
import threading

import fnserve as fs

CRASH_AFTER_READY_S = 0.3


def _crash(code: int) -> None:
    print(f"pid {os.getpid()}: crashing on purpose with exit code {code}", flush=True)
    sys.stderr.flush()
    os._exit(code)


@fs.service(name="crash_after_ready", auth=False)
def crash_after_ready() -> dict[str, int]:
    """Ready at once, then the process exits with code 3 a moment later, every time."""
    threading.Timer(CRASH_AFTER_READY_S, _crash, args=(3,)).start()
    return {}


@crash_after_ready.endpoint("/whoami", method="GET")
def whoami() -> int:
    return os.getpid()


@fs.service(name="crash_in_init", auth=False)
def crash_in_init() -> dict[str, int]:
    """The process dies in its initializer (no Python exception to report), every time."""
    print("loading the weights", flush=True)
    _crash(7)
    return {}
