"""Looking at processes from tests: is a replica's pid still alive, which standby workers does a server keep?"""

from __future__ import annotations

import os
from pathlib import Path


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_gone(pid: int) -> bool:
    return not is_running(pid)


def standby_workers(parent: int) -> set[int]:
    """The live standby workers (`fnserve.runtime.worker --standby`) the process `parent` started, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and b"--standby" in cmdline and fields[0] != "Z":
            found.add(int(entry.name))
    return found
