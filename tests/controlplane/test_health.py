"""Replica health through a real server: replicas killed or stopped under a steady stream of calls, services whose own
`check_health()` starts failing, and replicas that keep crashing until the deployment goes to ERROR."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _deploy import deploy_failure, deployed
from _processes import is_gone, is_running
from crashing import crash_after_ready, crash_in_init
from health_checked import health_class, health_fn
from lifecycle_replicas import lifecycle_replicas

import fnserve as fs
from fnserve.testing import run_server, wait_until

HEALTH_INTERVAL_S, HEALTH_TIMEOUT_S = 0.2, 1.0
CLIENTS = 4  # threads calling at once: at most this many calls are in flight at any moment


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A server that checks its replicas five times a second and gives up on one after a second."""
    with run_server(
        home=tmp_path / "home",
        health_interval_s=HEALTH_INTERVAL_S,
        health_timeout_s=HEALTH_TIMEOUT_S,
        restart_backoff_s=0.05,
        graceful_shutdown_s=2,
    ) as server_url:
        yield server_url


@pytest.fixture
def api(url: str) -> Iterator[fs.Client]:
    with fs.Client(url) as client:
        yield client


def ready_pids(api: fs.Client, name: str) -> list[int]:
    return sorted(r["pid"] for r in api.get_service(name)["replicas"] if r["state"] == "READY")


def replaced(api: fs.Client, name: str, gone: int, count: int = 2) -> Callable[[], list[int]]:
    """A predicate: the READY pids once there are `count` again and `gone` is not among them."""

    def check() -> list[int]:
        pids = ready_pids(api, name)
        return pids if len(pids) == count and gone not in pids else []

    return check


@dataclass
class Outcome:
    pid: int | None  # the replica that answered
    status: int
    error: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic)


class CallLoop:
    """`CLIENTS` threads calling GET `url` back to back until stopped (or for `limit_s` at most)."""

    def __init__(self, url: str, *, limit_s: float = 30.0) -> None:
        self.url = url
        self.deadline = time.monotonic() + limit_s
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> CallLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        assert not any(thread.is_alive() for thread in self._threads), "a caller thread did not finish"

    def _run(self) -> None:
        with httpx.Client(timeout=15) as http:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                response = http.get(self.url)
                body = response.json()
                outcome = (
                    Outcome(body["pid"] if isinstance(body, dict) else body, 200, None)
                    if response.status_code == 200
                    else Outcome(None, response.status_code, body["error"])
                )
                with self._lock:
                    self.outcomes.append(outcome)

    def answered_by(self, pid: int, since: float = 0.0) -> bool:
        with self._lock:
            return any(o.pid == pid and o.at >= since for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.status != 200]


# -- replicas that die or stop answering -------------------------------------------------------------------------


def test_sigkilled_replica_fails_only_its_calls_in_flight_and_is_replaced(
    url: str, api: fs.Client, tmp_path: Path
) -> None:
    """
    1. Deploy two replicas; four threads call /whoami back to back.
    2. Once both replicas have answered, SIGKILL one.
    3. A replacement with a new pid is READY within the deadline and answers calls.
    4. Stop the callers: every call succeeded but at most one per thread (those in flight on the killed replica),
       and each of those got 502 replica_crashed naming the killed replica.
    """
    with deployed(lifecycle_replicas, url, init_log=str(tmp_path / "init.log")) as deployment:
        first, second = ready_pids(api, "lifecycle_replicas")
        with CallLoop(f"{deployment.address}/whoami") as calls:
            wait_until(lambda: calls.answered_by(first) and calls.answered_by(second), what="both replicas to answer")

            os.kill(first, signal.SIGKILL)

            pids = wait_until(replaced(api, "lifecycle_replicas", first), timeout_s=15, what="a replacement")
            (replacement,) = set(pids) - {second}
            wait_until(lambda: calls.answered_by(replacement), timeout_s=5, what="the replacement to answer")

    assert is_gone(first)
    assert_only_calls_in_flight_failed(calls, f"pid={first}] died while handling the request")
    info = api.get_service("lifecycle_replicas")
    assert info["state"] == "ACTIVE"
    assert info["failed_replicas"][0]["pid"] == first
    assert info["failed_replicas"][0]["reason"] == "died: killed by SIGKILL (exit code -9)"


def assert_only_calls_in_flight_failed(calls: CallLoop, words: str) -> None:
    """At most one failed call per calling thread (the one in flight on the lost replica), each a 502
    replica_crashed whose message has `words`; many more succeeded."""
    failures = calls.failures
    assert len(failures) <= CLIENTS, failures
    for failure in failures:
        assert failure.status == 502
        assert failure.error is not None
        assert failure.error["code"] == "replica_crashed"
        assert words in failure.error["message"]
    assert len(calls.outcomes) - len(failures) > 2 * CLIENTS


def test_stopped_replica_is_detected_within_the_health_timeout_and_replaced(
    url: str, api: fs.Client, tmp_path: Path
) -> None:
    """
    1. Deploy two replicas; four threads call /whoami back to back.
    2. SIGSTOP one replica: its process lives, but answers nothing.
    3. Within the health interval plus timeout (and some slack) it leaves the READY replicas; a replacement is READY
       soon after and answers calls, and the stopped process is gone (killed).
    4. Its reason says it did not answer a health check in time.
    5. Stop the callers: at most one failure per thread (calls sent to it before it was detected), each 502
       replica_crashed saying why; every other call succeeded.
    """
    with deployed(lifecycle_replicas, url, init_log=str(tmp_path / "init.log")) as deployment:
        stopped, survivor = ready_pids(api, "lifecycle_replicas")
        try:
            with CallLoop(f"{deployment.address}/whoami") as calls:
                wait_until(lambda: calls.answered_by(stopped) and calls.answered_by(survivor), what="both to answer")

                os.kill(stopped, signal.SIGSTOP)
                detect_s = HEALTH_INTERVAL_S + HEALTH_TIMEOUT_S + 3
                wait_until(lambda: stopped not in ready_pids(api, "lifecycle_replicas"), timeout_s=detect_s)

                pids = wait_until(replaced(api, "lifecycle_replicas", stopped), timeout_s=15, what="a replacement")
                (replacement,) = set(pids) - {survivor}
                wait_until(lambda: calls.answered_by(replacement), timeout_s=5, what="the replacement to answer")
            wait_until(lambda: is_gone(stopped), timeout_s=5, what="the stopped replica to be killed")
        finally:
            if is_running(stopped):  # only when the test failed before the server killed it
                os.kill(stopped, signal.SIGCONT)
                os.kill(stopped, signal.SIGKILL)

    failed = api.get_service("lifecycle_replicas")["failed_replicas"][0]
    assert failed["pid"] == stopped
    assert failed["reason"] == "did not answer a health check within 1 s"
    assert_only_calls_in_flight_failed(calls, f"pid={stopped}] did not answer a health check within 1 s")


# -- the service's own check_health() ----------------------------------------------------------------------------


def test_replica_whose_health_check_keeps_failing_is_replaced(url: str, api: fs.Client, tmp_path: Path) -> None:
    """
    1. Deploy `health_fn` (two replicas; its `@health_fn.health_check` takes the initializer's `flag` by name).
    2. Both stay READY through several checks.
    3. Write one replica's pid to the flag file: its check raises from then on.
    4. After three failed checks in a row it is replaced: a new pid is READY, the other replica is untouched, and
       the service lists the failed one with the reason and the check's message.
    """
    flag = tmp_path / "unhealthy"
    with deployed(health_fn, url, flag=str(flag)) as deployment:
        sick, well = ready_pids(api, "health_fn")

        flag.write_text(f"{sick}\n")

        pids = wait_until(replaced(api, "health_fn", sick), timeout_s=15, what="the unhealthy replica to be replaced")
        assert well in pids
        failed = api.get_service("health_fn")["failed_replicas"][0]
        assert failed["pid"] == sick
        assert failed["reason"] == f"failed 3 health checks in a row: RuntimeError: storage unreachable from pid {sick}"
        assert deployment.whoami() in pids
        wait_until(lambda: is_gone(sick), timeout_s=5, what="the unhealthy replica to exit")


def test_class_check_health_returning_false_gets_the_replica_replaced(url: str, api: fs.Client, tmp_path: Path) -> None:
    """
    1. Deploy `health_class` (one replica) whose `check_health(self)` returns False once its pid is in the flag file.
    2. Write its pid there: it is replaced by a new replica, which serves; the reason names the method.
    """
    flag = tmp_path / "unhealthy"
    with deployed(health_class, url, flag=str(flag)) as deployment:
        (sick,) = ready_pids(api, "health_class")

        flag.write_text(str(sick))

        (fresh,) = wait_until(replaced(api, "health_class", sick, count=1), timeout_s=15, what="a replacement")
        failed = api.get_service("health_class")["failed_replicas"][0]
        assert failed["reason"] == "failed 3 health checks in a row: HealthClass.check_health() returned False"
        assert deployment.whoami() == fresh


# -- replicas that keep crashing ---------------------------------------------------------------------------------


def replica_logs(home: Path, name: str) -> int:
    """How many replicas of `name` were started (each writes its own log file)."""
    folder = home / "logs" / name
    return len(list(folder.glob("*.log"))) if folder.exists() else 0


def stays(predicate: Callable[[], bool], *, for_s: float) -> bool:
    """Whether `predicate` holds every time it is looked at for `for_s` (to show that nothing more happens)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


def test_replica_that_keeps_crashing_after_ready_puts_deployment_in_error(
    url: str, api: fs.Client, tmp_path: Path
) -> None:
    """
    1. Deploy `crash_after_ready`, whose replica exits with code 3 a moment after it is ready, every time.
    2. It is restarted (with backoff) until five replicas in a row have died; then the deployment is in ERROR.
    3. The reason gives the exit cause and the last lines of the replica's log; no replica runs.
    4. No replica starts after that: still five replica logs a while later.
    5. Its route answers 503 deployment_failed, naming the cause.
    """
    home = tmp_path / "home"
    deployment = fs.deploy(crash_after_ready, url=url)()
    try:
        info = wait_until(
            lambda: (found := api.get_service("crash_after_ready"))["state"] == "ERROR" and found,
            timeout_s=30,
            what="the deployment to go to ERROR",
        )
    finally:
        deployment.close()

    reason = info["reason"]
    assert reason.startswith("replicas keep failing (5 in a row), so they are not restarted again")
    assert "died: exit code 3" in reason
    assert "crashing on purpose with exit code 3" in reason  # from the replica's log
    assert info["replicas"] == []
    assert [r["exit_code"] for r in info["failed_replicas"]] == [3] * 5
    assert replica_logs(home, "crash_after_ready") == 5
    assert stays(lambda: replica_logs(home, "crash_after_ready") == 5, for_s=1.0)
    assert api.get_service("crash_after_ready")["state"] == "ERROR"

    response = httpx.get(f"{url}/crash_after_ready/whoami", timeout=10)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "deployment_failed"
    assert "replicas keep failing" in response.json()["error"]["message"]


def test_initializer_that_kills_its_process_puts_deployment_in_error(url: str, api: fs.Client, tmp_path: Path) -> None:
    """
    1. Deploy `crash_in_init`, whose initializer prints a line and exits the process with code 7 (no exception).
    2. It is tried five times, then `wait()` raises DeploymentFailed: ERROR, with the exit code and the log's last
       lines in the reason.
    3. No replica starts after that.
    """
    home = tmp_path / "home"
    deploy_failure(crash_in_init, url, match="exit code 7")

    info = api.get_service("crash_in_init")
    assert info["state"] == "ERROR"
    reason = info["reason"]
    assert reason.startswith(
        "replica failed to start: the replica exited before its initializer finished (exit code 7; 5 failures in a row)"
    )
    assert "loading the weights" in reason
    assert "crashing on purpose with exit code 7" in reason
    assert replica_logs(home, "crash_in_init") == 5
    assert stays(lambda: replica_logs(home, "crash_in_init") == 5, for_s=1.0)
