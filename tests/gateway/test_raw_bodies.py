"""A request's raw body into a `bytes` or `fs.File` parameter, over real HTTP to real replicas: the other arguments
from the query string, per-endpoint body limits, and the 415 that endpoints without a file parameter keep."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from uploads import uploads

import fnserve as fs
from fnserve.settings import Settings
from fnserve.testing import run_server

SERVER_BODY_LIMIT = 100_000
JPEG = {"content-type": "image/jpeg"}


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server (body limit 100 kB) with the uploads service deployed, for the whole module."""
    settings = Settings(max_body_bytes=SERVER_BODY_LIMIT)
    with run_server(home=tmp_path_factory.mktemp("uploads-home"), settings=settings, graceful_shutdown_s=2) as url:
        with fs.deploy(uploads, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield f"{url}/uploads"


def test_raw_body_goes_to_a_bytes_parameter_and_the_query_to_the_others(address: str) -> None:
    response = httpx.post(f"{address}/size?scale=3", content=b"\xff\xd8\xff\xe0 jpeg", headers=JPEG)

    assert response.status_code == 200, response.text
    assert response.json() == {"size": 27, "head": "ffd8ffe0"}


def test_raw_body_goes_to_a_file_parameter_with_its_content_type(address: str) -> None:
    response = httpx.post(
        f"{address}/describe", params={"top_k": "3"}, content=b"hello", headers={"content-type": "text/plain"}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": None,
        "content_type": "text/plain",
        "size": 5,
        "text": "hello",
        "top_k": 3,
    }


def test_raw_body_round_trips_as_bytes(address: str) -> None:
    data = bytes(range(256))

    response = httpx.post(f"{address}/echo", content=data, headers={"content-type": "application/octet-stream"})

    assert response.content == data
    assert response.headers["content-type"] == "application/octet-stream"


def test_json_calls_still_reach_a_bytes_parameter(address: str) -> None:
    response = httpx.post(f"{address}/size", json={"data": "abc", "scale": 2})

    assert response.json() == {"size": 6, "head": "616263"}


def test_bad_query_argument_with_a_raw_body_is_a_422_naming_it(address: str) -> None:
    response = httpx.post(f"{address}/describe?top_k=many", content=b"x", headers=JPEG)

    assert response.status_code == 422
    assert "top_k" in response.text


def test_endpoint_without_a_file_parameter_keeps_its_415(address: str) -> None:
    response = httpx.post(f"{address}/json-only", content=b"x", headers=JPEG)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_raw_body_to_an_endpoint_with_several_files_asks_for_multipart(address: str) -> None:
    response = httpx.post(f"{address}/pair", content=b"abc", headers=JPEG)

    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_raw_body_as_a_polled_job_is_refused(address: str) -> None:
    response = httpx.post(f"{address}/size", content=b"x", headers={**JPEG, "fnserve-poll-seconds": "1"})

    assert response.status_code == 400
    assert "raw body" in response.json()["error"]["message"]


def test_body_limit_is_per_endpoint(address: str) -> None:
    too_big_here = httpx.post(f"{address}/small", content=b"x" * 11, headers=JPEG)
    fits_here = httpx.post(f"{address}/large", content=b"x" * 150_000, headers=JPEG)
    too_big_for_the_server = httpx.post(f"{address}/size", content=b"x" * 150_000, headers=JPEG)

    assert too_big_here.status_code == 413
    assert too_big_here.json()["error"]["details"] == {"limit": 10}
    assert fits_here.json() == 150_000
    assert too_big_for_the_server.status_code == 413
