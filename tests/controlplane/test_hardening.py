"""Hardening over real HTTP: unsafe archives, dev mode (pickles only on loopback), and over-long caller input."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from client_gated_init import gated_init
from echo import echo

import fnserve as fs
from fnserve.client.api import Client
from fnserve.sdk.deploy import deploy_project
from fnserve.settings import Settings
from fnserve.testing import run_server

APPS = Path(__file__).parent.parent / "apps"
TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def production_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server outside dev mode (as when bound beyond loopback): it runs no pickled code or arguments."""
    with run_server(home=tmp_path_factory.mktemp("prod"), settings=Settings(dev=False), graceful_shutdown_s=2) as url:
        yield url


def zip_with(name: str, *, symlink: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, "import os\n")
    return buffer.getvalue()


def deploy_archive(url: str, data: bytes) -> httpx.Response:
    digest = hashlib.sha256(data).hexdigest()
    headers = owner(url)
    assert httpx.put(f"{url}/v1/artifacts/{digest}", content=data, headers=headers, timeout=TIMEOUT).is_success
    body = {
        "spec": echo.spec.model_dump(mode="json"),
        "code": {"kind": "archive", "sha256": digest, "entrypoint": "echo:echo"},
    }
    return httpx.post(f"{url}/v1/services", json=body, headers=headers, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("entry", "symlink", "message"),
    [
        ("../escape.py", False, "escapes the project folder"),
        ("/etc/evil.py", False, "escapes the project folder"),
        ("pkg/../../escape.py", False, "escapes the project folder"),
        ("link.py", True, "symlink"),
    ],
)
def test_unsafe_archive_is_refused_at_deploy(production_url: str, entry: str, symlink: bool, message: str) -> None:
    """An archive entry that would land outside its folder, or a symlink, fails the deploy with 400 naming it."""
    response = deploy_archive(production_url, zip_with(entry, symlink=symlink))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert message in error["message"]
    assert entry in error["message"]


def test_outside_dev_mode_pickled_code_is_refused(production_url: str) -> None:
    """`fs.deploy(obj)` ships a pickle: a server outside dev mode answers 403 saying how to deploy instead."""
    with pytest.raises(fs.errors.Forbidden, match="fnserve deploy app.py:service"):
        fs.deploy(echo, url=production_url)()


def test_outside_dev_mode_source_with_json_arguments_deploys(production_url: str) -> None:
    """1. A source archive with JSON initializer arguments deploys and serves.
    2. Arguments JSON cannot carry exactly (a tuple) travel as a pickle, which is refused with the fix."""
    with Client(production_url) as client:
        deployment = deploy_project(echo, APPS, "echo:echo", client=client, init_kwargs={"greeting": "hey"})
        deployment.wait(timeout_s=30)
        assert deployment.echo(text="hi") == {"text": "hi", "greeting": "hey", "shared": 1}
        with pytest.raises(fs.errors.Forbidden, match="must be JSON values"):
            deploy_project(gated_init, APPS, "client_gated_init:gated_init", client=client, init_args=((1, 2),))
        deployment.teardown()


def test_dev_mode_beyond_loopback_is_refused() -> None:
    with pytest.raises(ValueError, match="only allowed on loopback"):
        Settings(host="0.0.0.0", dev=True).check()
    assert Settings(host="0.0.0.0").dev_mode is False
    assert Settings(host="127.0.0.1").dev_mode is True
    assert Settings(host="::1").dev_mode is True


def test_over_long_caller_input_is_refused_or_replaced(echo_url: str) -> None:
    """1. A path over 2048 characters → 414 before any routing.
    2. An over-long or odd X-Request-ID is replaced by a fresh id, never echoed.
    3. A version pin that is not a short number → 400."""
    response = httpx.get(f"{echo_url}/echo/{'a' * 3000}", timeout=TIMEOUT)
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "uri_too_long"
    assert "limit is 2048" in response.json()["error"]["message"]

    odd = "x" * 500
    response = httpx.get(f"{echo_url}/echo/ping", headers={"x-request-id": odd}, timeout=TIMEOUT)
    assert response.headers["x-request-id"] != odd
    assert len(response.headers["x-request-id"]) == 32

    response = httpx.post(f"{echo_url}/echo/echo", json={}, headers={"fnserve-version": "9" * 40}, timeout=TIMEOUT)
    assert response.status_code == 400
