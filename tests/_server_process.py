"""`fnserve server` as a process of its own, for tests that kill it (SIGKILL) and start it again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from fnserve.testing import wait_until

FNSERVE = Path(sys.executable).parent / "fnserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_log(home: Path, url: str) -> Path:
    """Where `server_process` writes the output of the server at `url`."""
    return home.parent / f"server-{url.rsplit(':', 1)[1]}.log"


@contextmanager
def server_process(
    home: Path,
    extra_env: dict[str, str] | None = None,
    *,
    prefix: Sequence[str] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`fnserve server` in its own process (with `extra_env` added to its environment); yields it, its URL and its
    owner key. Killed at the end if alive.

    `prefix` runs the server through another command (tests/_small_disk.py: in a namespace of its own, where its home
    may be another filesystem, read here through /proc); `preexec_fn` runs in the child before it starts."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    env.update(extra_env or {})
    log = (home.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [*prefix, str(FNSERVE), "server", "--port", str(port), "--home", str(home)],
        env=env,
        stdout=log,
        stderr=log,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    key_file = Path(f"/proc/{process.pid}/root{home}" if prefix else home) / "owner.key"
    try:

        def up() -> bool:
            assert process.poll() is None, (home.parent / f"server-{port}.log").read_text()
            try:
                return httpx.get(f"{url}/-/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout_s=30, what="the server to start")
        yield process, url, key_file.read_text().strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()
