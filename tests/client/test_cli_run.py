"""The inner loop: `fnserve run app.py --reload` deploys a new version on save without dropping a call, and
`svc.run()` at the bottom of a file does what `fnserve run` does."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import httpx
from _cli import COMMAND_TIMEOUT_S, EXIT_ON_SIGINT, Foreground

from fnserve.auth import read_owner_key
from fnserve.client.api import Client
from fnserve.client.reload import ProjectWatcher
from fnserve.testing import wait_until

APP = """import fnserve as fs


@fs.service(replicas=1, auth=False)
def greeter():
    return {{}}


@greeter.endpoint("/hello")
def hello() -> str:
    return "{answer}"
{bottom}"""


def test_run_reload_deploys_a_new_version_on_save_and_drops_no_call(tmp_path: Path) -> None:
    """
    1. `fnserve run app.py --reload` serves greeter (version 1 answers "one").
    2. A caller keeps calling /hello; app.py is saved answering "two".
    3. Within the deadline /hello answers "two", from version 2; every call in between answered 200 ("one" or
       "two"): blue/green, none dropped.
    4. A file that the project's .gitignore names changes: no new version.
    """
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(APP.format(answer="one", bottom=""))
    (project / ".gitignore").write_text("scratch.txt\n")
    command = Foreground("run", "app.py", "--port", "0", "--home", str(tmp_path / "home"), "--reload", cwd=project)
    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    try:
        url = command.wait_for(r"fnserve server on (http://127\.0\.0\.1:\d+)", timeout_s=COMMAND_TIMEOUT_S).group(1)
        command.wait_for(r"Serving, and deploying a new version on each save", timeout_s=COMMAND_TIMEOUT_S)
        hello = f"{url}/greeter/hello"
        assert httpx.post(hello, json={}, timeout=10).json() == "one"

        def call_all_along() -> None:
            with httpx.Client(timeout=10) as caller:
                while not stop.is_set():
                    response = caller.post(hello, json={})
                    (answers if response.status_code == 200 else failures).append(response.text)

        caller = threading.Thread(target=call_all_along)
        caller.start()
        (project / "app.py").write_text(APP.format(answer="two", bottom=""))
        wait_until(lambda: answers and answers[-1] == '"two"', timeout_s=COMMAND_TIMEOUT_S, what="the new version")
        stop.set()
        caller.join(timeout=10)

        assert failures == []
        assert set(answers) == {'"one"', '"two"'}
        with Client(url, api_key=read_owner_key(tmp_path / "home")) as client:
            service = client.get_service("greeter")
            assert service["version"] == 2
            command.wait_for(r"Serving; watching for changes", timeout_s=COMMAND_TIMEOUT_S)
            (project / "scratch.txt").write_text("notes")
            (project / "cache").mkdir()
            assert ProjectWatcher([project]).changed() == []
            assert client.get_service("greeter")["version"] == 2
        assert command.interrupt() in EXIT_ON_SIGINT
    finally:
        stop.set()
        command.close()


def test_service_run_at_the_bottom_of_a_file_serves_it_as_fnserve_run_does(tmp_path: Path) -> None:
    """`python app.py` with `greeter.run(port=0, home=...)` at the bottom (no __main__ guard): a server, greeter
    deployed (its own import by the deploy and by the replica does not start another), its curl; Ctrl-C stops."""
    project = tmp_path / "project"
    project.mkdir()
    home = tmp_path / "home"
    (project / "app.py").write_text(APP.format(answer="ran", bottom=f"\n\ngreeter.run(port=0, home={str(home)!r})\n"))
    command = Foreground(command=[sys.executable, "app.py"], cwd=project)
    try:
        url = command.wait_for(r"fnserve server on (http://127\.0\.0\.1:\d+)", timeout_s=COMMAND_TIMEOUT_S).group(1)
        command.wait_for(r"Serving; press Ctrl-C", timeout_s=COMMAND_TIMEOUT_S)
        assert "ACTIVE  (1/1 replicas ready)" in command.output
        assert f"curl -X POST {url}/greeter/hello" in command.output
        assert httpx.post(f"{url}/greeter/hello", json={}, timeout=10).json() == "ran"
        assert command.output.count("fnserve server on") == 1
        assert command.interrupt() == 0
        assert "Traceback" not in "".join(command.stderr)
    finally:
        command.close()
