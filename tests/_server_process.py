"""`fnserve server` as a process of its own, for tests that kill it (SIGKILL) and start it again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fnserve.testing import wait_until

FNSERVE = Path(sys.executable).parent / "fnserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(
    home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`fnserve server` in its own process (with `extra_env` added to its environment); yields it, its URL and its
    owner key. Killed at the end if alive."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    env.update(extra_env or {})
    log = (home.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(FNSERVE), "server", "--port", str(port), "--home", str(home)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, (home.parent / f"server-{port}.log").read_text()
            try:
                return httpx.get(f"{url}/-/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout_s=30, what="the server to start")
        yield process, url, (home / "owner.key").read_text().strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()
