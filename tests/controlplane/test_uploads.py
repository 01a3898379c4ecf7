"""Every `/v1` body has a limit: code artifacts stream to disk, hashed and counted as they arrive (chunked bodies
included), and every other `/v1` body is JSON of at most `max_body_bytes`. Real server, real sockets."""

from __future__ import annotations

import hashlib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import owner
from _memory import peak_rss_bytes, reset_peak_rss
from _raw_http import RawResponse, connect, read_response, send_all

from fnserve.settings import Settings
from fnserve.testing import run_server

MIB = 1024 * 1024
LIMIT = MIB  # the module server's artifact and JSON body limits
TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server whose artifacts and `/v1` JSON bodies may have 1 MiB; its URL and home."""
    home = tmp_path_factory.mktemp("uploads")
    settings = Settings(max_artifact_bytes=LIMIT, max_body_bytes=LIMIT)
    with run_server(home=home, settings=settings, graceful_shutdown_s=2) as url:
        yield url, home


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def leftovers(home: Path) -> list[str]:
    return sorted(path.name for path in (home / "artifacts").iterdir() if path.name.startswith("."))


def refused(response: RawResponse | httpx.Response, status: int, code: str) -> str:
    status_code = response.status if isinstance(response, RawResponse) else response.status_code
    assert status_code == status, response
    error = response.error() if isinstance(response, RawResponse) else response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


def test_artifact_streams_to_disk_and_is_kept_only_when_its_digest_matches(server: tuple[str, Path]) -> None:
    """1. A chunked upload (no Content-Length) that hashes to its name is stored: 201 with its size; again, 200.
    2. Bytes that hash to another digest: 400 naming both, and nothing is stored.
    3. No temporary file is left behind."""
    url, home = server
    data = b"print('hi')\n" * 50_000
    digest = hashlib.sha256(data).hexdigest()
    put = f"{url}/v1/artifacts/{digest}"
    first = httpx.put(put, content=chunks(data), headers=owner(url), timeout=TIMEOUT)
    assert first.status_code == 201, first.text
    assert first.json() == {"sha256": digest, "size": len(data), "created": True}
    assert (home / "artifacts" / digest).read_bytes() == data
    again = httpx.put(put, content=data, headers=owner(url), timeout=TIMEOUT)
    assert again.status_code == 200
    assert again.json()["created"] is False

    wrong = "0" * 64
    response = httpx.put(f"{url}/v1/artifacts/{wrong}", content=chunks(data), headers=owner(url), timeout=TIMEOUT)
    message = refused(response, 400, "invalid_request")
    assert digest in message
    assert wrong in message
    assert not (home / "artifacts" / wrong).exists()
    assert leftovers(home) == []


def _send_until_answered(sock: socket.socket, parts: Iterator[bytes]) -> int:
    """Send `parts` until the server answers (as curl does); the bytes sent."""
    sent = 0
    for part in parts:
        sent += send_all(sock, [part])
        if select.select([sock], [], [], 0)[0]:
            break
    return sent


def _chunked(total: int) -> Iterator[bytes]:
    piece = b"%x\r\n" % 65536 + b"z" * 65536 + b"\r\n"
    for _ in range(total // 65536):
        yield piece


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak RSS through Linux /proc")
def test_chunked_artifact_over_the_limit_is_refused_as_it_arrives(server: tuple[str, Path]) -> None:
    """
    1. A chunked artifact of 64 MiB (no Content-Length) is sent to a server whose limit is 1 MiB, 64 KiB at a
       time, until an answer comes.
    2. The answer is 413 `payload_too_large` naming the limit and FNSERVE_MAX_ARTIFACT_BYTES, long before the end;
       the connection closes.
    3. The process peaked less than 16 MiB above where it started (the whole body was read into memory before),
       and no temporary file is left.
    """
    url, home = server
    total = 64 * MIB
    with connect(url) as sock:
        reset_peak_rss()
        before = peak_rss_bytes()
        sock.sendall(
            b"PUT /v1/artifacts/%s HTTP/1.1\r\nauthorization: %s\r\ntransfer-encoding: chunked\r\n\r\n"
            % (b"1" * 64, owner(url)["authorization"].encode())
        )
        sent = _send_until_answered(sock, _chunked(total))
        response = read_response(sock)
        grown = peak_rss_bytes() - before
    message = refused(response, 413, "payload_too_large")
    assert f"{LIMIT} byte limit" in message
    assert "FNSERVE_MAX_ARTIFACT_BYTES" in message
    assert response.closed
    assert sent < total
    assert grown < 16 * MIB, f"peak RSS grew {grown / MIB:.1f} MiB"
    assert leftovers(home) == []


def test_artifact_over_the_limit_is_refused_to_an_http_client(server: tuple[str, Path]) -> None:
    """httpx, which sends the whole body before it reads, gets the 413 too: declared (Content-Length) and chunked."""
    url, home = server
    data = b"x" * (3 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    for content in (data, chunks(data)):
        response = httpx.put(f"{url}/v1/artifacts/{digest}", content=content, headers=owner(url), timeout=TIMEOUT)
        refused(response, 413, "payload_too_large")
    assert not (home / "artifacts" / digest).exists()
    assert leftovers(home) == []


def test_v1_json_body_over_the_limit_is_refused_as_it_arrives(server: tuple[str, Path]) -> None:
    """A 50 MiB chunked `POST /v1/services` (it was parsed whole before): 413 long before its end, naming the
    limit; the connection closes."""
    url, _ = server
    total = 50 * MIB
    with connect(url) as sock:
        sock.sendall(
            b"POST /v1/services HTTP/1.1\r\nauthorization: %s\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n" % owner(url)["authorization"].encode()
        )
        sent = _send_until_answered(sock, _chunked(total))
        response = read_response(sock)
    assert f"{LIMIT} byte limit" in refused(response, 413, "payload_too_large")
    assert response.closed
    assert sent < total


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 200),  # what `httpx.put(content=...)` and fetch() with a Blob send: taken as JSON
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/merge-patch+json", 200),
        ("text/plain", 415),  # a JSON-looking body: refused, not parsed
        ("application/x-www-form-urlencoded", 415),  # `curl -d` without `-H 'content-type: application/json'`
        ("multipart/form-data; boundary=x", 415),
    ],
)
def test_v1_json_routes_take_json_only(server: tuple[str, Path], content_type: str | None, status: int) -> None:
    url, _ = server
    headers = owner(url)
    if content_type is not None:
        headers["content-type"] = content_type
    body = b'{"requirements": ["six"]}'
    response = httpx.put(f"{url}/v1/environments/typed", content=body, headers=headers, timeout=TIMEOUT)
    if status == 200:
        assert response.status_code == 200, response.text
        assert response.json()["requirements"] == ["six"]
    else:
        message = refused(response, 415, "unsupported_media_type")
        assert "content-type: application/json" in message
        assert response.json()["error"]["details"] == {"expected": "application/json", "received": content_type}
