"""Processes the harness starts: launching in their own session, finding their trees, memory, CPU time, stopping.

Everything reads /proc directly (Linux only), so the harness needs nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")  # the unit of utime and stime in /proc/<pid>/stat (100 on Linux)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_process(
    argv: list[str], *, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (so its whole group can be signalled), output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/<pid>/stat the harness uses. `cpu_ticks` is utime + stime, in clock ticks."""

    pid: int
    ppid: int
    session_id: int
    start_ticks: int
    cpu_ticks: int


def read_proc(pid: int) -> ProcInfo | None:
    """Read /proc/<pid>/stat, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after the last ")" are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        session_id=int(fields[3]),
        start_ticks=int(fields[19]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
    )


def all_procs() -> list[ProcInfo]:
    """Every process visible in /proc."""
    procs = (read_proc(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [proc for proc in procs if proc is not None]


def process_tree(root_pid: int) -> list[ProcInfo]:
    """The root, its descendants (by parent pid), and anything else in the root's session.

    The session catches daemonized helpers that were re-parented to init; the parent walk catches
    children that started their own session (a supervisor that wants to signal each replica's group).
    """
    procs = all_procs()
    children: dict[int, list[ProcInfo]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    root = next((proc for proc in procs if proc.pid == root_pid), None)
    if root is None:
        return []
    found = {root.pid: root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop().pid, []):
            if child.pid not in found:
                found[child.pid] = child
                stack.append(child)
    for proc in procs:
        if proc.session_id == root.session_id and proc.session_id != 0:
            found.setdefault(proc.pid, proc)
    return sorted(found.values(), key=lambda proc: proc.pid)


@dataclass(frozen=True)
class Memory:
    """Memory of a group of processes, in bytes. `pss_bytes` is None where smaps_rollup was unreadable."""

    process_count: int
    rss_bytes: int
    pss_bytes: int | None


def _status_kib(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def memory_of(pids: Iterable[int]) -> Memory:
    """Sum VmRSS (and Pss) over `pids`. RSS counts shared pages once per process; PSS splits them fairly."""
    count = rss_kib = pss_kib = 0
    pss_complete = True
    for pid in pids:
        rss = _status_kib(Path(f"/proc/{pid}/status"), "VmRSS")
        if rss is None:
            continue  # gone, or a kernel thread without an address space
        count += 1
        rss_kib += rss
        pss = _status_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
        if pss is None:
            pss_complete = False
        else:
            pss_kib += pss
    return Memory(process_count=count, rss_bytes=rss_kib * 1024, pss_bytes=pss_kib * 1024 if pss_complete else None)


@dataclass(frozen=True)
class CpuSample:
    """The CPU time of every process in a tree at one moment, keyed by (pid, start ticks) so a recycled pid is new."""

    root_pid: int
    ticks: dict[tuple[int, int], int]


def cpu_sample(root_pid: int) -> CpuSample:
    """Read the CPU time (user + system) of `root_pid` and every process in its tree."""
    return CpuSample(root_pid, {(proc.pid, proc.start_ticks): proc.cpu_ticks for proc in process_tree(root_pid)})


@dataclass(frozen=True)
class CpuTime:
    """CPU seconds a process tree spent between two samples: all of it, and the root process's share."""

    total_s: float
    root_s: float


def cpu_between(before: CpuSample, after: CpuSample) -> CpuTime:
    """The CPU time spent between two samples of one tree.

    A process in both samples counts its difference, one that started in between counts all its time, and one
    that ended in between is lost (its last ticks were never read): load tests keep their processes, so it is rare.
    """
    total = root = 0
    for key, ticks in after.ticks.items():
        spent = ticks - before.ticks.get(key, 0)
        total += spent
        if key[0] == after.root_pid:
            root += spent
    return CpuTime(total_s=total / CLOCK_TICKS_PER_S, root_s=root / CLOCK_TICKS_PER_S)


def _still_same(proc: ProcInfo) -> bool:
    """True when `proc.pid` is alive and was not recycled for another process."""
    now = read_proc(proc.pid)
    return now is not None and now.start_ticks == proc.start_ticks


def stop_process_tree(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """Stop a process started by `start_process`, its group, and every descendant; never waits unbounded.

    SIGTERM goes to the whole group (what Ctrl-C in a terminal would reach), so servers shut down their
    children in order. Whatever is left after `timeout_s` (the group, and descendants that left it) gets SIGKILL.
    """
    tree = process_tree(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_still_same(proc) for proc in tree if proc.pid != process.pid):
        process.poll()
        time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for proc in tree:
        if proc.pid != process.pid and _still_same(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


class WaitTimeout(TimeoutError):
    """A bounded wait ran out; the message says what did not happen and where to look."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
    describe: Callable[[], str] = lambda: "",
) -> T:
    """Call `check` until it returns something other than None, and return that; raise `WaitTimeout` after `timeout_s`.

    `what` names the thing awaited ("bare app on port 8123 to answer GET /"); `describe` adds the last
    observation and the log file to the error message.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            detail = describe()
            raise WaitTimeout(f"Timed out after {timeout_s:g} s waiting for {what}" + (f"; {detail}" if detail else ""))
        time.sleep(interval_s)
