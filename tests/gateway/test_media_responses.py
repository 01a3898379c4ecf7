"""Answers that are not JSON, over real HTTP from real replicas: bytes, fs.Response, fs.FileResponse, a stream with a
media type, results over the inline limit, jobs, the Python client and `fnserve invoke -o`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cli import fnserve
from media import PNG, media

import fnserve as fs
from fnserve.auth import in_process_key
from fnserve.errors import FunctionError
from fnserve.settings import Settings
from fnserve.testing import run_server

INLINE_LIMIT = 1000


@pytest.fixture(scope="module")
def media_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server (inline limit 1000 bytes) with the media service deployed, for the whole module."""
    settings = Settings(inline_result_bytes=INLINE_LIMIT)
    with run_server(home=tmp_path_factory.mktemp("media-home"), settings=settings, graceful_shutdown_s=2) as url:
        with fs.deploy(media, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


@pytest.fixture
def deployment(media_url: str) -> Iterator[fs.Deployment]:
    with fs.get_deployment("media", url=media_url) as handle:
        yield handle


def test_bytes_result_is_sent_as_octet_stream(deployment: fs.Deployment) -> None:
    response = httpx.post(f"{deployment.address}/raw", json={"size": 300})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == "300"
    assert response.content == bytes(range(256)) + bytes(range(44))


def test_response_sends_its_media_type_status_and_headers(deployment: fs.Deployment) -> None:
    image = httpx.get(f"{deployment.address}/image")
    teapot = httpx.post(f"{deployment.address}/teapot")

    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", PNG)
    assert image.headers["cache-control"] == "max-age=60"
    assert image.headers["content-length"] == str(len(PNG))
    assert "x-request-id" in image.headers
    assert teapot.status_code == 418
    assert teapot.headers["content-type"] == "text/plain; charset=utf-8"
    assert teapot.text == "short and stout"


def test_file_response_guesses_its_media_type_and_names_the_download(deployment: fs.Deployment, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7 tiny")

    response = httpx.post(f"{deployment.address}/file", json={"path": str(report), "filename": "résumé.pdf"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"
    assert response.content == b"%PDF-1.7 tiny"


def test_errors_of_raw_answers_keep_the_error_envelope(deployment: fs.Deployment, tmp_path: Path) -> None:
    nested = httpx.post(f"{deployment.address}/bad-bytes")
    missing = httpx.post(f"{deployment.address}/missing-file", json={"directory": str(tmp_path)})

    assert nested.status_code == 500
    assert nested.json()["error"]["code"] == "function_error"
    assert "not JSON-serializable" in nested.json()["error"]["message"]
    assert missing.status_code == 500
    assert missing.headers["content-type"] == "application/json"
    assert "FileNotFoundError" in missing.json()["error"]["message"]


def test_raw_result_over_the_inline_limit_is_stored_with_its_media_type(
    deployment: fs.Deployment, media_url: str
) -> None:
    response = httpx.post(f"{deployment.address}/raw", json={"size": INLINE_LIMIT + 1})

    assert response.status_code == 302
    owner = {"authorization": f"Bearer {in_process_key(media_url)}"}
    stored = httpx.get(f"{media_url}{response.headers['location']}", headers=owner)
    assert stored.status_code == 200
    assert stored.headers["content-type"] == "application/octet-stream"
    assert len(stored.content) == INLINE_LIMIT + 1


def test_stream_with_a_media_type_sends_raw_bytes_even_to_sse_clients(deployment: fs.Deployment) -> None:
    headers = {"accept": "text/event-stream"}
    with httpx.stream("POST", f"{deployment.address}/speak", json={"count": 2}, headers=headers) as response:
        body = response.read()

    assert response.headers["content-type"] == "audio/wav"
    assert body == b"RIFF" + b"\x00" * 4 + b"\x01" * 4


def test_client_returns_bytes_and_responses(deployment: fs.Deployment) -> None:
    raw = deployment.raw(size=3)
    big = deployment.raw(size=INLINE_LIMIT + 5)  # through the stored asset
    image = deployment.image()
    chunks = list(deployment.speak(count=1))

    assert raw == b"\x00\x01\x02"
    assert isinstance(big, bytes)
    assert len(big) == INLINE_LIMIT + 5
    assert isinstance(image, fs.Response)
    assert (image.content, image.media_type, image.headers["cache-control"]) == (PNG, "image/png", "max-age=60")
    assert b"".join(chunks) == b"RIFF\x00\x00\x00\x00"
    with pytest.raises(FunctionError, match="not JSON-serializable"):
        deployment.bad_bytes()


def test_job_with_a_raw_result_keeps_it_as_an_asset_of_its_media_type(deployment: fs.Deployment) -> None:
    job = deployment.submit("/image", method="GET")

    result = job.result(timeout_s=20)

    assert isinstance(result, fs.Response)
    assert (result.content, result.media_type) == (PNG, "image/png")


def test_cli_invoke_writes_a_binary_result_to_a_file(media_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.png"

    done = fnserve("invoke", "media", "/image", "-X", "GET", "-o", str(out), url=media_url)

    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == PNG
    assert f"Wrote {len(PNG)} bytes" in done.stderr


def test_cli_invoke_writes_a_media_stream_to_a_file(media_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"

    done = fnserve("invoke", "media", "/speak", "-d", '{"count": 1}', "-o", str(out), url=media_url)

    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == b"RIFF\x00\x00\x00\x00"
