"""A service's `time_limit`: the time left is shown while it runs, it is torn down when the limit passes, and a
restarted server keeps counting from the original deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _processes import is_gone
from time_limited import long_lived, medium_lived, short_lived

import fnserve as fs
from fnserve.auth import in_process_key
from fnserve.testing import run_server, wait_until

FNSERVE = Path(sys.executable).parent / "fnserve"


def cli(*args: str, url: str) -> str:
    """Run the `fnserve` command against `url` (a server of this process) and return what it printed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FNSERVE_")}
    env.update({"COLUMNS": "200", "FNSERVE_URL": url, "FNSERVE_API_KEY": in_process_key(url) or ""})
    result = subprocess.run([str(FNSERVE), *args], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_time_left_is_shown_while_the_service_runs(server_url: str, client: fs.Client) -> None:
    """
    1. Deploy `long_lived` (time_limit="1h"); the service view gives `expires_at` one hour after the deploy and
       `time_left_s` just under an hour.
    2. `fnserve status` and `fnserve ls` show the time left.
    3. Once torn down, it has neither.
    """
    with fs.deploy(long_lived, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        info = client.get_service("long_lived")
        expires_at = datetime.fromisoformat(info["expires_at"])
        assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)
        assert 3500 < info["time_left_s"] <= 3600

        status = cli("status", "long_lived", url=server_url)
        assert "Time left 59m" in status
        assert f"(until {expires_at:%Y-%m-%d %H:%M:%S} UTC)" in status
        listed = cli("ls", url=server_url)
        assert "TIME LEFT" in listed
        row = next(line for line in listed.splitlines() if "long_lived" in line)
        assert "59m" in row

        deployment.teardown()
    info = client.get_service("long_lived")
    assert (info["state"], info["expires_at"], info["time_left_s"]) == ("INACTIVE", None, None)


def test_service_is_torn_down_when_its_time_limit_passes(server_url: str, client: fs.Client) -> None:
    """
    1. Deploy `short_lived` (time_limit="1.5s"); it serves, with some time left.
    2. Once the limit passes it is INACTIVE, the reason naming the limit and when it was reached; its replica is
       gone and its route answers 503 service_inactive with that reason.
    """
    with fs.deploy(short_lived, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        info = client.get_service("short_lived")
        (pid,) = [replica["pid"] for replica in info["replicas"]]
        expires_at = datetime.fromisoformat(info["expires_at"])
        assert httpx.get(f"{server_url}/short_lived/ping-me", timeout=10).json() == "pong"

        info = wait_until(
            lambda: (found := client.get_service("short_lived"))["state"] == "INACTIVE" and found,
            timeout_s=10,
            what="the service to reach its time limit",
        )

    assert datetime.now(UTC) >= expires_at
    assert info["reason"] == f"time limit of 1.5s reached at {expires_at:%Y-%m-%d %H:%M:%S} UTC"
    assert info["replicas"] == []
    wait_until(lambda: is_gone(pid), timeout_s=5, what="the replica to exit")
    response = httpx.get(f"{server_url}/short_lived/ping-me", timeout=10)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_inactive"
    assert response.json()["error"]["details"]["reason"] == info["reason"]


def test_restarted_server_keeps_the_original_time_limit(tmp_path: Path) -> None:
    """
    1. On a server, deploy `medium_lived` (3 s) and `long_lived` (1 h); note when each expires; stop the server
       before `medium_lived` expires.
    2. Once `medium_lived`'s limit has passed, start another server on the same home folder.
    3. `long_lived` is ACTIVE again with the same `expires_at`: no fresh hour.
    4. `medium_lived` is INACTIVE with the time-limit reason, and no replica of it was started again.
    """
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        for service in (medium_lived, long_lived):
            with fs.deploy(service, url=url)() as deployment:
                deployment.wait(timeout_s=30)
        medium_expires = datetime.fromisoformat(client.get_service("medium_lived")["expires_at"])
        long_expires = client.get_service("long_lived")["expires_at"]
    assert datetime.now(UTC) < medium_expires, "the first server outlived the limit; the restart is not tested"
    medium_logs = list((home / "logs" / "medium_lived").glob("*.log"))
    assert len(medium_logs) == 1
    wait_until(lambda: datetime.now(UTC) > medium_expires, timeout_s=5, what="medium_lived's limit to pass")

    with run_server(home=home, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        info = wait_until(
            lambda: (found := client.get_service("long_lived"))["state"] == "ACTIVE" and found,
            timeout_s=30,
            what="long_lived to be ACTIVE again",
        )
        assert info["expires_at"] == long_expires

        medium = client.get_service("medium_lived")
        assert medium["state"] == "INACTIVE"
        assert medium["reason"] == f"time limit of 3s reached at {medium_expires:%Y-%m-%d %H:%M:%S} UTC"
        assert list((home / "logs" / "medium_lived").glob("*.log")) == medium_logs
