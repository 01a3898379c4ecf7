"""The `fnserve` command line, run as the installed console script against real servers."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from _cli import COMMAND_TIMEOUT_S, EXIT_ON_SIGINT, REPO, STOP_DEADLINE_S, Foreground, fnserve
from _processes import is_running

from fnserve.auth import read_owner_key
from fnserve.client.api import Client
from fnserve.testing import wait_until

GREETER = str(REPO / "examples" / "greeter.py")


def curl_url(output: str, path: str) -> str:
    """The URL of the panel's `curl` line for the route ending in `path`."""
    match = re.search(rf"curl (?:-N )?-X \w+ (http://\S+{re.escape(path)}) ", output)
    assert match, f"no curl line for {path} in:\n{output}"
    return match.group(1)


@pytest.fixture
def deployed_greeter(server_url: str) -> str:
    """examples/greeter.py deployed through the CLI with one replica; returns the server URL."""
    result = fnserve("deploy", GREETER, "--replicas", "1", "--timeout", "30", url=server_url)
    assert result.returncode == 0, result.stdout + result.stderr
    return server_url


def test_deploy_prints_a_panel_with_url_state_and_a_curl_that_works(server_url: str) -> None:
    """
    1. `fnserve deploy examples/greeter.py` (two replicas) exits 0.
    2. Its panel shows the service URL, the state ACTIVE with 2/2 replicas, and a curl line per route.
    3. The URL of the /hello curl line answers a real request.
    """
    result = fnserve("deploy", GREETER, "--timeout", "30", url=server_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"URL       {server_url}/greeter" in result.stdout
    assert "State     ACTIVE  (2/2 replicas ready)" in result.stdout
    hello_url = curl_url(result.stdout, "/hello")
    assert hello_url == f"{server_url}/greeter/hello"
    assert curl_url(result.stdout, "/stream") == f"{server_url}/greeter/stream"

    response = httpx.post(hello_url, json={"number": 7}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == "Hello, world! My favorite number is 7"


def test_ls_invoke_and_teardown_manage_a_deployed_service(deployed_greeter: str) -> None:
    """
    1. `fnserve ls` lists greeter as ACTIVE with its URL and routes.
    2. `fnserve invoke greeter /hello -d '{"number": 7}'` prints the result.
    3. `fnserve invoke greeter /stream` prints the streamed text.
    4. `fnserve teardown greeter` prints INACTIVE, and `fnserve ls` agrees.
    """
    url = deployed_greeter

    listed = fnserve("ls", url=url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "greeter" in line)
    assert "ACTIVE" in row
    assert "1/1" in row
    assert f"{url}/greeter" in row
    assert "POST /hello, POST /stream" in row

    invoked = fnserve("invoke", "greeter", "/hello", "-d", '{"number": 7}', url=url)
    assert invoked.returncode == 0, invoked.stderr
    assert invoked.stdout.strip() == '"Hello, world! My favorite number is 7"'

    streamed = fnserve("invoke", "greeter", "/stream", url=url)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == "Hello, world!Items: 1 5 fooDone streaming"  # no newline of its own into a pipe

    torn_down = fnserve("teardown", "greeter", url=url)
    assert torn_down.returncode == 0, torn_down.stderr
    assert torn_down.stdout.strip() == "greeter is INACTIVE"
    row = next(line for line in fnserve("ls", url=url).stdout.splitlines() if "greeter" in line)
    assert "INACTIVE" in row


def test_ls_says_how_to_deploy_when_there_are_no_services(server_url: str) -> None:
    listed = fnserve("ls", url=server_url)

    assert listed.returncode == 0, listed.stderr
    assert "No services yet" in listed.stdout


def test_invoke_exits_nonzero_with_the_error_code_when_the_service_is_unknown(server_url: str) -> None:
    result = fnserve("invoke", "nope", "/hello", url=server_url)

    assert result.returncode != 0
    assert "Error:" in result.stderr
    assert "nope" in result.stderr
    assert "(service_not_found)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invoke_exits_nonzero_naming_data_when_it_is_not_json(refused_url: str) -> None:
    """--data is checked before the server is contacted, so no server is needed."""
    for flag in ("--data", "-d"):
        result = fnserve("invoke", "greeter", "/hello", flag, "{not json", url=refused_url)

        assert result.returncode != 0
        assert "--data is not valid JSON" in result.stderr
        assert "Traceback" not in result.stderr


def test_invoke_exits_nonzero_when_data_is_json_but_not_an_object(refused_url: str) -> None:
    result = fnserve("invoke", "greeter", "/hello", "-d", "[1, 2]", url=refused_url)

    assert result.returncode != 0
    assert "--data must be a JSON object, got list" in result.stderr


@pytest.mark.parametrize("command", [["ls"], ["invoke", "greeter", "/hello"], ["teardown", "greeter"]])
def test_commands_exit_nonzero_when_no_server_answers(refused_url: str, command: list[str]) -> None:
    result = fnserve(*command, url=refused_url)

    assert result.returncode != 0
    assert f"no fnserve server answers at {refused_url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_serves_in_the_foreground_and_sigint_stops_server_and_replicas(tmp_path: Path) -> None:
    """
    1. `fnserve run examples/greeter.py --port 0` prints the bound URL (a real port), deploys greeter and
       prints its panel (ACTIVE, a curl line) and how to stop it.
    2. The service answers at the printed URL; its two replica pids are read from the control plane.
    3. SIGINT: the command exits within the deadline, and no replica process remains.
    """
    command = Foreground("run", GREETER, "--port", "0", "--home", str(tmp_path / "home"))
    replica_pids: list[int] = []
    try:
        url = command.wait_for(r"fnserve server on (http://127\.0\.0\.1:(\d+))", timeout_s=COMMAND_TIMEOUT_S)
        server_url, port = url.group(1), int(url.group(2))
        assert port != 0
        command.wait_for(r"Serving; press Ctrl-C", timeout_s=COMMAND_TIMEOUT_S)
        assert "ACTIVE  (2/2 replicas ready)" in command.output
        hello_url = curl_url(command.output, "/hello")
        assert hello_url == f"{server_url}/greeter/hello"

        assert httpx.post(hello_url, json={"number": 3}, timeout=10).json() == "Hello, world! My favorite number is 3"
        with Client(server_url, api_key=read_owner_key(tmp_path / "home")) as client:
            replica_pids = [replica["pid"] for replica in client.get_service("greeter")["replicas"]]
        assert len(replica_pids) == 2
        assert all(is_running(pid) for pid in replica_pids)

        assert command.interrupt() in EXIT_ON_SIGINT

        wait_until(
            lambda: not [pid for pid in replica_pids if is_running(pid)],
            timeout_s=STOP_DEADLINE_S,
            what="replicas gone",
        )
        assert "Traceback" not in "".join(command.stderr)
    finally:
        command.close()
        for pid in replica_pids:  # only if the test failed midway: do not leave replicas behind
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_server_prints_its_url_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    """
    1. `fnserve server --port 0` prints the URL it bound (a real port) and where its state lives.
    2. On this first start it prints the new owner key once; the key file holds the same key, mode 0600.
    3. The URL answers the health check; /v1 answers 401 without the key and 200 with it.
    4. SIGINT: it shuts down in order (application shutdown completes) and exits within the deadline.
    """
    home = tmp_path / "home"
    command = Foreground("server", "--port", "0", "--home", str(home))
    try:
        url = command.wait_for(r"fnserve server on (http://127\.0\.0\.1:(\d+)) \(state in (.+)\)", timeout_s=30)
        assert int(url.group(2)) != 0
        assert url.group(3) == str(home)
        printed = command.wait_for(r"(fsk_[A-Za-z0-9_-]{43})", timeout_s=5).group(1)
        assert printed == read_owner_key(home)
        assert (home / "owner.key").stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{url.group(1)}/-/healthz", timeout=5).json() == {"status": "ok"}
        assert httpx.get(f"{url.group(1)}/v1/services", timeout=5).status_code == 401
        owner = {"authorization": f"Bearer {printed}"}
        assert httpx.get(f"{url.group(1)}/v1/services", headers=owner, timeout=5).status_code == 200

        assert command.interrupt() in EXIT_ON_SIGINT

        errors = "".join(command.stderr)
        assert "Application shutdown complete" in errors
        assert "Traceback" not in errors
    finally:
        command.close()


def test_url_without_a_scheme_reaches_the_server(server_url: str) -> None:
    """`--url 127.0.0.1:PORT`, as people type it, means http://127.0.0.1:PORT."""
    bare = server_url.removeprefix("http://")

    listed = fnserve("ls", "--url", bare, url=server_url)

    assert listed.returncode == 0, listed.stderr
    assert "No services yet" in listed.stdout


@pytest.mark.parametrize(
    ("given", "says"),
    [("ftp://127.0.0.1:8000", "is not an http:// or https:// URL"), ("127.0.0.1:notaport", "has no valid port")],
)
def test_url_that_names_no_server_is_one_line_saying_what_is_wrong(given: str, says: str) -> None:
    result = fnserve("ls", "--url", given, url=None)

    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: the server URL '{given}' {says}"), result.stderr
    assert "http://HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
