"""How much memory local replicas use: the resident memory of each replica's process tree, read from /proc.

A local replica leads its own session (`start_new_session`), so its tree is every process in that session: its
children and theirs, even once reparented. Resident memory (RSS) counts pages shared between those processes once
per process, so a tree of forked workers reads high rather than low. Where /proc is missing (not Linux) nothing is
measured and memory limits are not enforced. The limits themselves are applied by the supervisor
(`controlplane/memory_guard.py`).
"""

from __future__ import annotations

import os
from collections.abc import Collection

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def session_rss_bytes(session_ids: Collection[int]) -> dict[int, int]:
    """Resident bytes of every process in each of `session_ids`, summed per session; a session with no process
    left is absent. Reads /proc once for all of them (blocking: call it in a thread)."""
    wanted = set(session_ids)
    totals: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return totals
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                text = stat.read()
        except OSError:  # it exited while we looked
            continue
        # `pid (comm) state ppid pgrp session ... rss ...`: comm may hold spaces and parentheses, so split after it.
        fields = text[text.rfind(b")") + 2 :].split()
        if len(fields) < 22:
            continue
        session = int(fields[3])
        if session in wanted:
            totals[session] = totals.get(session, 0) + int(fields[21]) * _PAGE_BYTES
    return totals
