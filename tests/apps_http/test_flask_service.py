"""A Flask app served whole by real replicas behind a real server: its routes under the prefix (path parameters, a
form, JSON, a streamed response, url_for building URLs with the prefix), fnserve's token in front of it, a large
upload read a piece at a time, and `fnserve deploy flask_app.py:app` on the module's app."""

from __future__ import annotations

import hashlib
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cli import fnserve
from flask_app import flask_app, plain_wsgi_service

import fnserve as fs
from fnserve.errors import SpecError
from fnserve.testing import run_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One server with `flask-app` deployed from its factory: (url, headers with its token)."""
    with (
        run_server(home=tmp_path_factory.mktemp("flask-home"), graceful_shutdown_s=2) as url,
        fs.deploy(flask_app, url=url)() as deployment,
        fs.deploy(plain_wsgi_service, url=url)() as plain,
    ):
        plain.wait(timeout_s=30)
        deployment.wait(timeout_s=30)
        assert deployment.token is not None
        yield url, {"authorization": f"Bearer {deployment.token}"}


def test_flask_routes_answer_under_the_prefix(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served
    base = f"{url}/flask-app"

    assert httpx.get(f"{base}/hello/Ada", headers=auth).text == "Hello, Ada!"
    assert httpx.get(f"{base}/users/7", params={"q": "x"}, headers=auth).json() == {
        "user_id": 7,
        "kind": "int",
        "q": "x",
    }
    assert httpx.get(f"{base}/users/seven", headers=auth).status_code == 404  # Flask's own 404
    form = httpx.post(f"{base}/form", data={"name": "Ada"}, headers=auth)
    assert form.json() == {"fields": {"name": "Ada"}, "content_type": "application/x-www-form-urlencoded"}
    echoed = httpx.post(f"{base}/json", json={"n": [1, 2]}, headers=auth)
    assert echoed.json() == {"got": {"n": [1, 2]}, "method": "POST"}
    assert httpx.get(f"{base}/boom", headers=auth).status_code == 500


def test_flask_sees_the_prefix_as_its_script_name(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served

    where = httpx.get(f"{url}/flask-app/where", headers=auth).json()

    assert where["script_name"] == "/flask-app"
    assert where["path_info"] == "/where"
    assert where["url_for_hello"] == "/flask-app/hello/x"  # a link the app builds works through the gateway


def test_a_token_is_required(served: tuple[str, dict[str, str]]) -> None:
    url, _ = served

    response = httpx.get(f"{url}/flask-app/hello/Ada")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_streamed_flask_response_arrives_chunk_by_chunk(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served
    with httpx.stream(
        "GET", f"{url}/flask-app/stream", params={"count": 3, "pause_s": 1.0}, headers=auth, timeout=10
    ) as response:
        assert response.status_code == 200
        chunks = response.iter_text()
        first = next(chunks)
        first_at = time.monotonic()
        rest = "".join(chunks)
        last_at = time.monotonic()

    assert first.startswith("data: line 0")
    assert last_at - first_at > 1.5  # the last came about two pauses after the first: streamed, not buffered
    assert (first + rest).count("data: line") == 3


def test_a_large_upload_reaches_flask_intact(served: tuple[str, dict[str, str]]) -> None:
    url, auth = served
    payload = bytes(range(256)) * 8192  # 2 MiB

    response = httpx.post(f"{url}/flask-app/digest", content=payload, headers=auth, timeout=30)

    assert response.json() == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_cli_deploys_a_modules_flask_app(server_url: str, tmp_path: Path) -> None:
    """`fnserve deploy web.py:app`: the module's Flask app, named after its attribute, imported by the replica from
    the uploaded folder."""
    app_file = tmp_path / "web.py"
    app_file.write_text(
        textwrap.dedent(
            """
            from flask import Flask

            app = Flask(__name__)

            @app.get("/hello/<name>")
            def hello(name):
                return {"hello": name}
            """
        )
    )

    done = fnserve("deploy", f"{app_file}:app", url=server_url)

    assert done.returncode == 0, done.stderr + done.stdout
    token = re.search(r"Token\s+(fst_\S+)", done.stdout)
    assert token is not None, done.stdout
    response = httpx.get(f"{server_url}/app/hello/flask", headers={"authorization": f"Bearer {token[1]}"})
    assert response.json() == {"hello": "flask"}


def test_a_plain_wsgi_apps_exception_is_a_function_error(served: tuple[str, dict[str, str]]) -> None:
    url, _ = served

    answer = httpx.get(f"{url}/plain-wsgi/chunks")
    failed = httpx.get(f"{url}/plain-wsgi/raise")

    assert answer.text == "one two three"
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "function_error"
    assert "ValueError: the plain WSGI app failed" in failed.json()["error"]["message"]


def test_a_flask_app_object_that_does_not_pickle_is_refused_with_the_way_out(server_url: str) -> None:
    """fs.deploy sends a service by value; a Flask app object holds weak references: the error says what to do."""
    from flask_app import app

    service = fs.asgi_service(app, name="unpicklable")

    with pytest.raises(SpecError, match="cannot be sent by value") as refused:
        fs.deploy(service, url=server_url)()

    assert "fnserve deploy app.py:NAME" in refused.value.message
    assert "@fs.service function that builds and returns it" in refused.value.message
