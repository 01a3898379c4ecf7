"""An `fs.Request` parameter over real HTTP to real replicas: the request as it came, any content type, for webhooks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from _auth import owner
from uploads import hooks, uploads

import fnserve as fs
from fnserve.testing import run_server


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("request-home"), graceful_shutdown_s=2) as url:
        for service in (uploads, hooks):
            with fs.deploy(service, url=url)() as deployment:
                deployment.wait(timeout_s=30)
        yield f"{url}/uploads"


def test_request_parameter_gets_method_path_headers_query_and_body(address: str) -> None:
    response = httpx.post(
        f"{address}/webhook?source=github&x=1",
        content=b"payload=%7B%7D",
        headers={"content-type": "application/x-www-form-urlencoded", "x-signature": "sha256=abc"},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "method": "POST",
        "path": "/webhook",
        "signature": "sha256=abc",
        "authorized": False,
        "query": {"source": "github", "x": "1"},
        "body": "payload=%7B%7D",
        "json": None,
        "source": "github",
    }


def test_request_json_decodes_a_json_body(address: str) -> None:
    response = httpx.post(f"{address}/webhook", json={"action": "opened"})

    assert response.json()["json"] == {"action": "opened"}
    assert response.json()["source"] == "unknown"


def test_request_endpoint_keeps_the_body_limit(address: str) -> None:
    too_big = httpx.post(f"{address}/webhook", content=b"x" * (5 * 1024 * 1024 + 1))

    assert too_big.status_code == 413


def test_request_parameter_is_not_a_caller_argument() -> None:
    webhook = next(endpoint for endpoint in uploads.spec.endpoints if endpoint.path == "/webhook")

    assert webhook.request_parameter == "request"
    assert list(webhook.parameters) == ["source"]


def test_request_of_a_service_behind_tokens_leaves_the_token_out(address: str) -> None:
    url = address.removesuffix("/uploads")

    response = httpx.post(f"{url}/hooks/webhook", content=b"{}", headers={**owner(url), "x-signature": "s"})

    assert response.status_code == 200, response.text
    assert "x-signature" in response.json()
    assert "authorization" not in response.json()
