"""Ctrl-C on `fnserve server`: the server stops its replicas in order and exits, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from _processes import is_running, standby_workers
from autoscaled import elastic
from echo import echo
from lifecycle_replicas import lifecycle_replicas

import fnserve as fs
from fnserve.auth import read_owner_key
from fnserve.testing import wait_until

FNSERVE = Path(sys.executable).parent / "fnserve"
STOP_DEADLINE_S = 20
EXIT_ON_SIGINT = (0, 128 + signal.SIGINT)  # uvicorn re-raises the captured SIGINT once shut down: 130


def test_sigint_on_server_leaves_no_replica_behind(tmp_path: Path) -> None:
    """
    1. Start `fnserve server --port 0` as a process of its own, as a user would in a terminal.
    2. Deploy a two-replica service, `echo`, and `elastic` (autoscaled from zero, so the server keeps a standby
       worker); collect the three replica pids and the standby's, all running.
    3. SIGINT the server (Ctrl-C): it exits within the deadline, and every one of those processes is gone.
    """
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    server = subprocess.Popen(
        [str(FNSERVE), "server", "--port", "0", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # like a terminal's foreground job: the signal reaches the server only
    )
    output: list[str] = []
    assert server.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(server.stdout or ()), daemon=True)
    reader.start()
    pids: list[int] = []
    try:
        found = wait_until(
            lambda: re.search(r"fnserve server on (http://127\.0\.0\.1:\d+)", "".join(output)) or server.poll(),
            timeout_s=30,
            what="the server's URL",
        )
        assert isinstance(found, re.Match), "".join(output)
        url = found.group(1)
        key = read_owner_key(home)
        with fs.Client(url, api_key=key) as client:
            services: list[tuple[fs.Service[Any], dict[str, str]]] = [
                (lifecycle_replicas, {"init_log": str(tmp_path / "init.log")}),
                (echo, {}),
                (elastic, {}),
            ]
            for service, kwargs in services:
                with fs.deploy(service, url=url, api_key=key)(**kwargs) as deployment:
                    deployment.wait(timeout_s=30)
            for name in ("lifecycle_replicas", "echo"):
                pids += [replica["pid"] for replica in client.get_service(name)["replicas"]]
        assert len(pids) == 3
        standby = wait_until(lambda: standby_workers(server.pid), timeout_s=30, what="a standby worker")
        pids += standby
        assert all(is_running(pid) for pid in pids)

        server.send_signal(signal.SIGINT)

        assert server.wait(timeout=STOP_DEADLINE_S) in EXIT_ON_SIGINT
        reader.join(timeout=5)
        wait_until(lambda: not [pid for pid in pids if is_running(pid)], timeout_s=5, what="every worker to exit")
        assert "Traceback" not in "".join(output)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=STOP_DEADLINE_S)
        for pid in pids:  # only when the test failed midway: leave no replica behind
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        if server.stdout is not None:
            server.stdout.close()
