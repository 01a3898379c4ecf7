"""The reaper of a service's command: a tiny process that stops the command's process group when its replica goes,
however it goes (SIGKILL included), so that no command outlives its replica.

Run by path, standard library only (`python -I -S reaper.py PGID GRACE_S`), in a process group of its own (a signal
to the replica's group does not reach it). It reads its stdin, a pipe whose only writer is the replica, until the
end: the kernel closes that pipe when the replica exits. Then SIGTERM to the command's group, SIGKILL after GRACE_S.
Linux has PR_SET_PDEATHSIG for this, but it reaches only the direct child, not what the command started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time


def alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # still there (a member changed its user)
        return True
    return True


def stop_group(group: int, grace_s: float) -> None:
    """SIGTERM to the group, then SIGKILL to what is left after `grace_s`."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while alive(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(group):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def main() -> None:
    group, grace_s = int(sys.argv[1]), float(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at a terminal is for the server, which stops replicas
    while os.read(0, 4096):  # nothing is ever written: this returns b"" when the replica has gone
        pass
    stop_group(group, grace_s)


if __name__ == "__main__":
    main()
