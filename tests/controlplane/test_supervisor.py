"""The supervisor through the real server: failed initializers, replicas per service, crashes and their
replacement, teardown, redeploys, server restarts and shutdown, with real replica processes."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _deploy import deploy_failure, deployed
from _processes import is_gone
from broken_init import not_a_dict, raises
from echo import echo
from lifecycle_replicas import lifecycle_replicas
from lifecycle_versions import version_one, version_two

import fnserve as fs
from fnserve.testing import run_server, wait_until

HTTP_TIMEOUT = httpx.Timeout(10.0)


def replica_pids(client: fs.Client, service_name: str) -> list[int]:
    """The pids of the service's READY replicas, sorted."""
    replicas = client.get_service(service_name)["replicas"]
    return sorted(replica["pid"] for replica in replicas if replica["state"] == "READY")


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# -- initializers --------------------------------------------------------------------------------------------


def test_service_enters_error_when_initializer_raises(server_url: str, client: fs.Client) -> None:
    """
    1. Deploy `raises`, whose initializer raises RuntimeError("cannot load the model").
    2. `wait()` raises DeploymentFailed carrying the reason.
    3. The service is in ERROR; its reason holds the exception and the user's own frames of its traceback (no
       fnserve, asyncio or thread-pool frame: the replica's log has those).
    4. Its route answers 503 deployment_failed in the error envelope, naming the cause.
    """
    failed = deploy_failure(raises, server_url, match="RuntimeError: cannot load the model")

    assert failed.code == "deployment_failed"
    info = client.get_service("raises")
    assert info["state"] == "ERROR"
    reason = info["reason"]
    assert "RuntimeError: cannot load the model" in reason
    assert 'broken_init.py", line' in reason
    assert "in raises" in reason
    assert "fnserve/runtime" not in reason
    assert "concurrent/futures" not in reason
    assert reason in failed.message

    response = httpx.get(f"{server_url}/raises/ping", timeout=HTTP_TIMEOUT)

    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "deployment_failed"
    assert "RuntimeError: cannot load the model" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


def test_service_enters_error_when_initializer_returns_non_dict(server_url: str, client: fs.Client) -> None:
    deploy_failure(not_a_dict, server_url, match="must return a dict")

    info = client.get_service("not_a_dict")
    assert info["state"] == "ERROR"
    assert "TypeError: the initializer not_a_dict() must return a dict" in info["reason"]
    assert "got list" in info["reason"]


def test_initializer_runs_once_per_replica(server_url: str, client: fs.Client, tmp_path: Path) -> None:
    """
    1. Deploy a service with replicas=2 whose initializer logs its pid to a file.
    2. Two READY replicas; the log holds each replica's pid exactly once.
    3. Calls reach both replicas, and each saw its initializer run once.
    """
    init_log = tmp_path / "init.log"
    with deployed(lifecycle_replicas, server_url, init_log=str(init_log)) as deployment:
        pids = replica_pids(client, "lifecycle_replicas")
        assert len(pids) == 2
        assert sorted(int(line) for line in init_log.read_text().split()) == pids

        answers: dict[int, int] = {}

        def both_answered() -> dict[int, int]:
            answer = deployment.whoami()
            answers[answer["pid"]] = answer["init_calls"]
            return answers if len(answers) == 2 else {}

        wait_until(both_answered, timeout_s=5, what="both replicas to answer")
        assert answers == {pids[0]: 1, pids[1]: 1}


# -- crashes and bad input -----------------------------------------------------------------------------------


def test_killed_replica_fails_its_call_and_is_replaced(server_url: str, client: fs.Client, tmp_path: Path) -> None:
    """
    1. Deploy two replicas; start a call that blocks in one of them until a release file appears.
    2. Once the call runs (it wrote its replica's pid), SIGKILL that replica.
    3. The blocked call gets 502 replica_crashed with a message that says what happened.
    4. The server stays up and the other replica keeps answering.
    5. A replacement with a new pid is READY within the deadline, and serves.
    """
    started, release = tmp_path / "started", tmp_path / "release"
    with deployed(lifecycle_replicas, server_url, init_log=str(tmp_path / "init.log")) as deployment:
        pids = replica_pids(client, "lifecycle_replicas")
        with ThreadPoolExecutor(max_workers=1) as pool:
            blocked = pool.submit(
                httpx.post,
                f"{deployment.address}/block",
                json={"started": str(started), "release": str(release)},
                timeout=HTTP_TIMEOUT,
            )
            killed = int(wait_until(lambda: started.exists() and started.read_text(), timeout_s=5))
            assert killed in pids

            os.kill(killed, signal.SIGKILL)
            response = blocked.result(timeout=10)

        assert response.status_code == 502
        error = error_of(response)
        assert error["code"] == "replica_crashed"
        assert f"pid={killed}] died while handling the request" in error["message"]
        assert "retrying may succeed" in error["message"]

        assert httpx.get(f"{server_url}/-/healthz", timeout=HTTP_TIMEOUT).status_code == 200
        (survivor,) = set(pids) - {killed}
        for _ in range(4):
            assert deployment.whoami()["pid"] in {survivor, *replica_pids(client, "lifecycle_replicas")}

        def replaced() -> list[int]:
            now = replica_pids(client, "lifecycle_replicas")
            return now if len(now) == 2 and killed not in now else []

        (replacement,) = set(wait_until(replaced, timeout_s=10, what="a replacement replica to be READY")) - {survivor}
        assert is_gone(killed)
        wait_until(lambda: deployment.whoami()["pid"] == replacement, timeout_s=5, what="the replacement to serve")
        assert client.get_service("lifecycle_replicas")["state"] == "ACTIVE"


MALFORMED_REQUESTS = [
    # (what, method, path, body, status, code); the first three are refused by the gateway, the rest by the replica
    ("invalid JSON", "POST", "/echo", b'{"text": "unterminated', 400, "invalid_request"),
    ("not an object", "POST", "/echo", b"[1, 2, 3]", 400, "invalid_request"),
    ("not UTF-8", "POST", "/echo", b"\xff\xfe not utf-8", 400, "invalid_request"),
    ("wrong types", "POST", "/echo", b'{"text": ["not", "a", "string"], "greeting": {}}', 422, "validation_error"),
    ("missing field", "POST", "/echo", b'{"greeting": "hi"}', 422, "validation_error"),
    ("unknown field", "POST", "/echo", b'{"text": "a", "unknown": 1}', 422, "validation_error"),
    ("bad path parameter", "GET", "/items/not-an-int", b"", 422, "validation_error"),
]


def test_malformed_requests_are_refused_without_killing_replica(server_url: str, client: fs.Client) -> None:
    """
    1. Deploy `echo` (one replica) and note its pid.
    2. Send each malformed request: invalid JSON, a non-object, bytes that are not UTF-8, wrong types, a missing
       and an unknown field, a path parameter of the wrong type. Each gets its 400 or 422 in the error envelope.
    3. The same replica (same pid) still serves, and it is still the only one.
    """
    with deployed(echo, server_url) as deployment:
        (pid,) = replica_pids(client, "echo")

        for what, method, path, content, status, code in MALFORMED_REQUESTS:
            response = httpx.request(
                method,
                f"{deployment.address}{path}",
                content=content,
                headers={"content-type": "application/json"},
                timeout=HTTP_TIMEOUT,
            )
            assert (response.status_code, error_of(response)["code"]) == (status, code), what

        assert deployment.whoami()["pid"] == pid
        assert deployment.echo(text="still here") == {"text": "still here", "greeting": "hello", "shared": 1}
        assert replica_pids(client, "echo") == [pid]


# -- teardown and redeploy -----------------------------------------------------------------------------------


def test_teardown_makes_service_inactive_and_stops_its_replicas(
    server_url: str, client: fs.Client, tmp_path: Path
) -> None:
    """
    1. Deploy two replicas and note their pids.
    2. Tear the service down: it is INACTIVE, and its route answers 503 service_inactive, saying why.
    3. Both replica processes are gone within the deadline.
    """
    with deployed(lifecycle_replicas, server_url, init_log=str(tmp_path / "init.log")) as deployment:
        pids = replica_pids(client, "lifecycle_replicas")
        assert len(pids) == 2

        deployment.teardown()

        assert deployment.state == "INACTIVE"
        info = client.get_service("lifecycle_replicas")
        assert (info["state"], info["replicas"]) == ("INACTIVE", [])
        response = httpx.get(f"{deployment.address}/whoami", timeout=HTTP_TIMEOUT)
        assert response.status_code == 503
        assert error_of(response)["code"] == "service_inactive"
        assert error_of(response)["details"]["reason"] == "torn down"
        wait_until(lambda: all(is_gone(pid) for pid in pids), timeout_s=5, what="the replicas to exit")


def test_deploy_under_same_name_replaces_code(server_url: str, client: fs.Client) -> None:
    """
    1. Deploy version_one of `lifecycle_versions`; it answers version 1.
    2. Deploy version_two under the same name: same service id, a new replica, and it answers version 2.
    3. The old replica is gone.
    """
    with deployed(version_one, server_url) as first:
        answer = first.version()
        assert answer["version"] == 1
        old_pid = answer["pid"]

        with deployed(version_two, server_url) as second:
            assert second.service_id == first.service_id
            answer = second.version()
            assert answer["version"] == 2
            assert answer["pid"] != old_pid
            assert replica_pids(client, "lifecycle_versions") == [answer["pid"]]
            wait_until(lambda: is_gone(old_pid), timeout_s=5, what="the old replica to exit")


# -- the server's own lifecycle ------------------------------------------------------------------------------


def test_server_restart_restores_active_services_and_keeps_inactive_ones_down(tmp_path: Path) -> None:
    """
    1. On a server, deploy `echo` (ACTIVE) and `lifecycle_versions`, then tear the latter down (INACTIVE).
    2. Stop that server and start another on the same home folder.
    3. `echo` comes back ACTIVE under the same service id, with a new replica, and serves.
    4. `lifecycle_versions` stays INACTIVE with no replicas, and its route says so (503 service_inactive).
    """
    home = tmp_path / "home"
    with run_server(home=home, graceful_shutdown_s=2) as url:
        with deployed(echo, url) as deployment:
            service_id = deployment.service_id
            old_pid = deployment.whoami()["pid"]
        with deployed(version_one, url) as versions:
            versions.teardown()

    with run_server(home=home, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        info = wait_until(
            lambda: (found := client.get_service("echo"))["state"] == "ACTIVE" and found,
            timeout_s=30,
            what="echo to be ACTIVE again",
        )
        assert info["service_id"] == service_id
        (new_pid,) = replica_pids(client, "echo")
        assert new_pid != old_pid
        response = httpx.get(f"{url}/echo/whoami", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {"pid": new_pid, "init_calls": 1}

        versions_info = client.get_service("lifecycle_versions")
        assert (versions_info["state"], versions_info["replicas"]) == ("INACTIVE", [])
        response = httpx.get(f"{url}/lifecycle_versions/version", timeout=HTTP_TIMEOUT)
        assert (response.status_code, error_of(response)["code"]) == (503, "service_inactive")


def test_server_stop_leaves_no_replica_alive(tmp_path: Path) -> None:
    """
    1. On a server, deploy a two-replica service and `echo`; collect the three replica pids.
    2. Leave the run_server block.
    3. Every replica process is gone within the deadline.
    """
    with (
        run_server(home=tmp_path / "home", graceful_shutdown_s=2) as url,
        fs.Client(url) as client,
        deployed(lifecycle_replicas, url, init_log=str(tmp_path / "init.log")),
        deployed(echo, url),
    ):
        pids = replica_pids(client, "lifecycle_replicas") + replica_pids(client, "echo")
    assert len(pids) == 3

    wait_until(lambda: all(is_gone(pid) for pid in pids), timeout_s=5, what="every replica to exit")
