"""Any HTTP server as a service, through a real server and real replicas: tests/apps/http_server.py (the standard
library's http.server) deployed with `fs.command_service`, `fnserve deploy --command` and the /v1 REST API (NVCF's
field names); two replicas both serving, a command's server killed and replaced while calls keep working, a command
that exits at once or never turns healthy reported with its output, and the token in front of it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _cli import fnserve
from _deploy import deploy_failure
from _processes import is_gone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import fnserve as fs
from fnserve.archive import pack_project
from fnserve.testing import run_server, wait_until

SERVER_SCRIPT = Path(__file__).parent.parent / "apps" / "http_server.py"
COMMAND = "python http_server.py --port {port}"  # `python`: the replica's own interpreter comes first on $PATH


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding the server's script, as a user's would."""
    folder = tmp_path_factory.mktemp("http-server-project")
    shutil.copy(SERVER_SCRIPT, folder / "http_server.py")
    return folder


@pytest.fixture(scope="module")
def served(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One server with `http-server` (two replicas, token required) deployed from Python: (url, token headers)."""
    service = fs.command_service(
        COMMAND, name="http-server", inference_url="/v1/infer", health_uri="/health", project=project, replicas=2
    )
    with (
        run_server(home=tmp_path_factory.mktemp("command-home"), graceful_shutdown_s=2) as url,
        fs.deploy(service, url=url)() as deployment,
    ):
        deployment.wait(timeout_s=60)
        assert deployment.token is not None
        yield url, {"authorization": f"Bearer {deployment.token}"}


def test_calls_reach_the_commands_server_with_a_token_only(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served

    answered = httpx.post(f"{url}/http-server/v1/echo", params={"x": "1"}, content=b"hi", headers=auth)
    refused = httpx.post(f"{url}/http-server/v1/echo", content=b"hi")

    assert answered.status_code == 200, answered.text
    assert answered.json()["path"] == "/v1/echo"
    assert answered.json()["query"] == "x=1"
    assert answered.json()["size"] == 2
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_the_commands_output_is_in_its_replicas_log(served: tuple[str, dict[str, str]]) -> None:
    url, _ = served
    with fs.Client(url) as client:
        logs_dir = Path(client.get_service("http-server")["logs_dir"])

    logs = "".join(path.read_text() for path in logs_dir.glob("*.log"))

    assert "http_server: listening on port " in logs  # what the command printed
    assert '"GET /health HTTP/1.1" 200' in logs
    assert "answered GET /health after" in logs  # what the replica said about it


def test_two_replicas_both_serve(served: tuple[str, dict[str, str]]) -> None:
    """Two slow calls at once go to the two replicas: two servers' pids answer."""
    url, auth = served

    def slow() -> int:
        response = httpx.get(f"{url}/http-server/slow", params={"s": 0.5}, headers=auth, timeout=10)
        pid: int = response.json()["pid"]
        return pid

    with ThreadPoolExecutor(2) as pool:
        pids = set(pool.map(lambda _: slow(), range(2)))

    assert len(pids) == 2


def test_the_commands_stream_arrives_event_by_event(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served
    with httpx.stream(
        "GET", f"{url}/http-server/stream", params={"count": 3, "pause_s": 0.2}, headers=auth, timeout=10
    ) as response:
        events = list(response.iter_text())

    assert response.headers["content-type"] == "text/event-stream"
    assert "".join(events) == "".join(f"data: event {n}\n\n" for n in range(3))


def test_a_killed_commands_replica_is_replaced_while_calls_keep_working(served: tuple[str, dict[str, str]]) -> None:
    """
    1. The server of one replica is SIGKILLed.
    2. Its replica exits (the supervisor lists it as failed: died) and a new one starts its own server.
    3. Calls keep being answered meanwhile, and two replicas serve again.
    """
    url, auth = served
    client = fs.Client(url)
    try:
        victim = httpx.get(f"{url}/http-server/whoami", headers=auth).json()["pid"]
        os.kill(victim, signal.SIGKILL)

        for _ in range(20):  # answered by the other replica while this one is replaced
            assert httpx.get(f"{url}/http-server/whoami", headers=auth).status_code == 200

        info = wait_until(
            lambda: (
                (found := client.get_service("http-server"))["replicas_ready"] == 2
                and found["failed_replicas"]
                and found
            ),
            timeout_s=30,
            what="a replacement replica",
        )
    finally:
        client.close()
    assert info["failed_replicas"][0]["reason"].startswith("died: exit code")
    with ThreadPoolExecutor(2) as pool:
        pids = set(
            pool.map(
                lambda _: httpx.get(f"{url}/http-server/slow", params={"s": 0.5}, headers=auth, timeout=10).json()[
                    "pid"
                ],
                range(2),
            )
        )
    assert len(pids) == 2
    assert victim not in pids


def test_a_sigkilled_replica_leaves_no_command_behind(server_url: str, client: fs.Client, project: Path) -> None:
    """
    1. A replica of a command service is SIGKILLed (no shutdown runs in it).
    2. Its command's server is stopped by the reaper, and a new replica serves.
    """
    service = fs.command_service(COMMAND, name="killed", project=project, auth=False)
    with fs.deploy(service, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        (replica,) = client.get_service("killed")["replicas"]
        command_pid = httpx.get(f"{server_url}/killed/whoami").json()["pid"]

        os.kill(replica["pid"], signal.SIGKILL)

        assert wait_until(lambda: is_gone(command_pid), timeout_s=10, what="the command stopped")
        wait_until(
            lambda: [r for r in client.get_service("killed")["replicas"] if r["state"] == "READY"],
            timeout_s=30,
            what="a new replica",
        )
        assert httpx.get(f"{server_url}/killed/whoami").json()["pid"] != command_pid


def test_a_server_restart_brings_a_command_service_back_and_its_stop_leaves_no_command(
    tmp_path: Path, project: Path
) -> None:
    """
    1. A command service runs; its server stops (replicas drained, commands stopped): the command is gone.
    2. Another server on the same home starts it again from its stored spec, and it serves.
    """
    home = tmp_path / "home"
    service = fs.command_service(COMMAND, name="restarted", project=project, auth=False)
    with run_server(home=home, graceful_shutdown_s=2) as url, fs.deploy(service, url=url)() as deployment:
        deployment.wait(timeout_s=30)
        first_pid = httpx.get(f"{url}/restarted/whoami").json()["pid"]
    assert wait_until(lambda: is_gone(first_pid), timeout_s=10, what="the first command stopped")

    with run_server(home=home, graceful_shutdown_s=2) as url, fs.Client(url) as client:
        wait_until(lambda: client.get_service("restarted")["state"] == "ACTIVE", timeout_s=30, what="ACTIVE again")
        answer = httpx.post(f"{url}/restarted/v1/infer", json={"again": True})

    assert answer.json()["echo"] == {"again": True}


def test_a_job_is_posted_to_the_inference_url(served: tuple[str, dict[str, str]]) -> None:
    """`/-/runsync` with `{"input": {...}}`: the input is POSTed to the inference URL as JSON, its answer is the
    result (the job paths are under `/-/`: every other path is the server's)."""
    url, auth = served

    response = httpx.post(f"{url}/http-server/-/runsync", json={"input": {"prompt": "hi"}}, headers=auth, timeout=20)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body["output"]["echo"] == {"prompt": "hi"}
    assert body["output"]["job_id"] == body["id"]


def test_a_queued_job_is_polled_and_an_error_answer_fails_it(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served

    queued = httpx.post(f"{url}/http-server/-/run", json={"input": {"status": 422}}, headers=auth)
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["id"]
    status = httpx.get(f"{url}/http-server/-/status/{job_id}", params={"wait_s": 10}, headers=auth, timeout=20).json()

    assert status["status"] == "FAILED"
    assert status["error"]["code"] == "function_error"
    assert status["error"]["message"].startswith("the command answered 422 to POST /v1/infer: ")


def test_the_python_client_and_cli_queue_jobs_at_the_inference_url(served: tuple[str, dict[str, str]]) -> None:
    """`Deployment.submit` and `fnserve jobs submit` find a command's job paths under `/-`."""
    url, _ = served
    with fs.get_deployment("http-server", url=url) as deployment:
        job = deployment.submit("/v1/infer", prompt="from python")
        finished = job.wait(20)
        again = deployment.job(job.id).info()

    queued = fnserve("jobs", "submit", "http-server", "/v1/infer", "-d", '{"p": 1}', "--wait", "--json", url=url)

    assert finished["status"] == "COMPLETED"
    assert finished["output"]["echo"] == {"prompt": "from python"}
    assert again["id"] == job.id
    assert queued.returncode == 0, queued.stderr
    assert '"p": 1' in queued.stdout


def test_a_call_to_the_inference_url_with_a_poll_window_runs_as_a_job(served: tuple[str, dict[str, str]]) -> None:
    """NVCF's pexec: the answer within the window, with the job's id."""
    url, auth = served

    response = httpx.post(
        f"{url}/http-server/v1/infer", json={"n": 1}, headers={**auth, "fnserve-poll-seconds": "10"}, timeout=20
    )

    assert response.status_code == 200, response.text
    assert response.json()["echo"] == {"n": 1}
    assert response.json()["job_id"] == response.headers["fnserve-request-id"]


@pytest.mark.anyio
async def test_a_commands_websocket_is_relayed(server_url: str, tmp_path: Path) -> None:
    """A WebSocket server run as a command: messages both ways through the gateway, and its close code back."""
    folder = tmp_path / "ws-project"
    folder.mkdir()
    shutil.copy(SERVER_SCRIPT.parent / "ws_server.py", folder / "ws_server.py")
    service = fs.command_service("python ws_server.py --port {port}", name="ws", project=folder, auth=False)
    with fs.deploy(service, url=server_url)() as deployment:
        await asyncio.to_thread(deployment.wait, 30)
    url = server_url.replace("http://", "ws://") + "/ws/ws"

    async with asyncio.timeout(10), connect(url) as websocket:
        await websocket.send("hi")
        assert await websocket.recv() == "echo: hi at /ws"
        await websocket.send(b"ab")
        assert await websocket.recv() == b"ba"
        await websocket.send("close")
        with pytest.raises(ConnectionClosed):
            await websocket.recv()
    assert websocket.close_code == 4001


# -- failures ---------------------------------------------------------------------------------------------------------


def test_a_command_that_exits_at_once_is_a_replica_failure_with_its_output(
    server_url: str, client: fs.Client, project: Path
) -> None:
    """Like an initializer that raises: the deployment is in ERROR at once, its reason the command's exit code, its
    command line and its last output, once."""
    service = fs.command_service(f"{COMMAND} --mode exit", name="exits", project=project)

    failed = deploy_failure(service, server_url, match="exited with code 3")

    assert "before GET /health answered 2xx" in failed.message
    assert failed.message.count("cannot load the weights from /models/missing.bin") == 1  # its own output
    assert "python http_server.py --port " in failed.message  # the command line, with its port
    info = client.get_service("exits")
    assert info["state"] == "ERROR"
    assert info["reason"].startswith(
        "replica failed to start: the app's startup failed: the command exited with code 3"
    )
    (replica,) = info["failed_replicas"]  # not retried: it would fail the same way
    assert replica["reason"].endswith("its last output:")


def test_a_command_that_never_turns_healthy_is_a_replica_failure_with_its_output(
    server_url: str, project: Path
) -> None:
    service = fs.command_service(f"{COMMAND} --mode unhealthy", name="unhealthy", project=project, startup_timeout=1)

    failed = deploy_failure(service, server_url, match="did not answer GET /health")

    assert "with 2xx within 1 s (last: status 503)" in failed.message
    assert "still warming up" in failed.message


def test_a_command_whose_health_uri_fails_is_replaced(tmp_path: Path, project: Path) -> None:
    """
    1. A command service runs on a server that pings its replicas five times a second.
    2. Its server is told to answer /health with 503 from now on.
    3. After three failed checks in a row its replica is replaced, the reason naming the health URI's answer.
    """
    service = fs.command_service(COMMAND, name="sickly", project=project, auth=False)
    with (
        run_server(home=tmp_path / "home", health_interval_s=0.2, health_timeout_s=2, graceful_shutdown_s=2) as url,
        fs.deploy(service, url=url)() as deployment,
        fs.Client(url) as client,
    ):
        deployment.wait(timeout_s=30)
        sick = httpx.post(f"{url}/sickly/sick").json()
        assert sick == {"healthy": False}

        info = wait_until(
            lambda: (found := client.get_service("sickly"))["failed_replicas"] and found,
            timeout_s=20,
            what="the sick replica replaced",
        )
        reason = info["failed_replicas"][0]["reason"]
        assert reason.startswith("failed 3 health checks in a row: RuntimeError: GET /health: status 503"), reason
        deployment.wait(timeout_s=30)
        assert httpx.get(f"{url}/sickly/health").json() == {"healthy": True}  # a fresh server


# -- other ways to declare one ----------------------------------------------------------------------------------------


def test_a_command_service_scaled_to_zero_starts_on_the_first_call(server_url: str, project: Path) -> None:
    """Autoscaled from zero: the first call waits while a replica (a pre-started standby worker) runs the command."""
    service = fs.command_service(
        COMMAND,
        name="from-zero",
        project=project,
        auth=False,
        autoscaling=fs.Autoscaling(min_replicas=0, max_replicas=1),
    )
    with fs.deploy(service, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)
        assert deployment.refresh()._info["replicas_ready"] == 0

        response = httpx.post(f"{server_url}/from-zero/v1/infer", json={"c": 3}, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["echo"] == {"c": 3}


def test_a_command_with_no_project_runs_in_an_empty_folder(server_url: str) -> None:
    """`python -m http.server`, with nothing uploaded: it lists its working folder, which is empty."""
    service = fs.command_service(
        "python -m http.server {port} --bind 127.0.0.1", name="files", health_uri="/", auth=False
    )
    with fs.deploy(service, url=server_url)() as deployment:
        deployment.wait(timeout_s=30)

    listing = httpx.get(f"{server_url}/files/")

    assert listing.status_code == 200
    assert "Directory listing for /" in listing.text
    assert "<li>" not in listing.text  # no file in it


def test_cli_deploys_a_folder_with_command(server_url: str, project: Path) -> None:
    done = fnserve(
        "deploy",
        str(project),
        "--command",
        COMMAND,
        "--name",
        "cli-server",
        "--inference-url",
        "/v1/infer",
        url=server_url,
    )

    assert done.returncode == 0, done.stderr + done.stdout
    assert "python http_server.py --port {port}" in done.stdout  # the panel shows the command
    token = re.search(r"Token\s+(fst_\S+)", done.stdout)
    assert token is not None, done.stdout
    assert f"curl -X POST {server_url}/cli-server/v1/infer" in done.stdout
    response = httpx.post(
        f"{server_url}/cli-server/v1/infer", json={"a": 1}, headers={"authorization": f"Bearer {token[1]}"}
    )
    assert response.json()["echo"] == {"a": 1}
    invoked = fnserve("invoke", "cli-server", "/v1/infer", "-d", '{"b": 2}', url=server_url)
    assert invoked.returncode == 0, invoked.stderr
    assert '"echo": {' in invoked.stdout
    assert '"b": 2' in invoked.stdout


def test_cli_deploys_a_command_service_declared_in_a_file(server_url: str, project: Path, tmp_path: Path) -> None:
    """`fnserve deploy serve.py:server`, where serve.py declares `fs.command_service(...)`: its folder is uploaded."""
    folder = tmp_path / "declared"
    folder.mkdir()
    shutil.copy(project / "http_server.py", folder / "http_server.py")
    (folder / "serve.py").write_text(
        "import fnserve as fs\n\n"
        f"server = fs.command_service({COMMAND!r}, name='declared', inference_url='/v1/infer', auth=False)\n"
    )

    done = fnserve("deploy", f"{folder / 'serve.py'}:server", url=server_url)

    assert done.returncode == 0, done.stderr + done.stdout
    assert httpx.post(f"{server_url}/declared/v1/infer", json={"d": 4}).json()["echo"] == {"d": 4}


def test_cli_command_needs_a_name(server_url: str, project: Path) -> None:
    done = fnserve("deploy", str(project), "--command", COMMAND, url=server_url)

    assert done.returncode == 1
    assert "--command needs --name" in done.stderr


def test_rest_api_takes_nvcf_field_names(server_url: str, project: Path, client: fs.Client) -> None:
    """POST /v1/services with the spec in NVCF's flat form (`inferenceUrl`, `inferencePort`, `healthUri`) and the
    project's archive: the service runs and answers on its fixed port."""
    from fnserve.apps.command import free_port

    port = free_port()
    code_sha256 = client.upload(pack_project(project))
    spec = {
        "name": "rest-server",
        "route_prefix": "/rest-server",
        "auth": False,
        "command": f"{sys.executable} http_server.py",  # its port from $PORT
        "inferenceUrl": "/v1/infer",
        "inferencePort": port,
        "healthUri": "/health",
    }
    info = client.deploy({"spec": spec, "code": {"kind": "archive", "sha256": code_sha256}})
    with fs.get_deployment(info["service_id"], url=server_url, wait=60) as deployment:
        assert deployment.state == "ACTIVE"

    version = client.get_service("rest-server")
    response = httpx.post(f"{server_url}/rest-server/v1/infer", json={"b": 2})

    assert response.json()["echo"] == {"b": 2}
    assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"healthy": True}
    assert version["api"]["command"]["inference_port"] == port


def test_an_encoded_path_reaches_the_server_as_sent(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served

    response = httpx.post(f"{url}/http-server/files/a%20b/%C3%A9", content=b"", headers=auth)

    assert response.json()["path"] == "/files/a%20b/%C3%A9"
