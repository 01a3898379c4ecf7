"""Every chunk of a stream reaches the caller as it was yielded: over SSE, through the sync and async Python clients
and `fnserve invoke`, and as bytes in the plain stream (which keeps the bytes, not the boundaries between chunks)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from _cli import COMMAND_TIMEOUT_S, FNSERVE, REPO, cli_env
from streamer import streamer

import fnserve as fs
from fnserve.testing import run_server

# Empty, newline-only, CRLF, multi-line, unicode (with characters `str.splitlines` breaks at), and a JSON line.
TEXTS = [
    "a",
    "\n",
    "b",
    "\n",
    "\n",
    "c",
    "",
    "\r\n",
    "two\r\nlines\r\n",
    "x\ry",
    "multi\nline\n\nchunk\n",
    " spaced ",
    "data: not a field",
    "héllo ✓ 🦀 \u2028 \x85 \x0c end",
    '{"index":0}\n',
]
TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def streamer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_server(home=tmp_path_factory.mktemp("home"), graceful_shutdown_s=2) as url:
        with fs.deploy(streamer, url=url)() as deployment:
            deployment.wait(timeout_s=30)
        yield url


def test_sync_client_yields_every_chunk_exactly(streamer_url: str) -> None:
    with fs.Client(streamer_url) as client:
        assert list(client.stream("/streamer", "/chunks", arguments={"texts": TEXTS})) == TEXTS


@pytest.mark.anyio
async def test_async_client_yields_every_chunk_exactly(streamer_url: str) -> None:
    async with fs.AsyncClient(streamer_url) as client:
        assert [chunk async for chunk in client.stream("/streamer", "/chunks", arguments={"texts": TEXTS})] == TEXTS


def test_deployment_handle_yields_every_chunk_exactly(streamer_url: str) -> None:
    with fs.get_deployment("streamer", url=streamer_url) as deployment:
        assert list(deployment.chunks(texts=TEXTS)) == TEXTS


def test_invoke_prints_every_chunk_byte_for_byte_with_no_newline_of_its_own_into_a_pipe(streamer_url: str) -> None:
    """Its output is the chunks back to back: `a\\nb\\n\\nc` and so on, CRs included."""
    result = subprocess.run(
        [str(FNSERVE), "invoke", "streamer", "/chunks", "-d", orjson.dumps({"texts": TEXTS}).decode()],
        capture_output=True,
        env=cli_env(streamer_url),
        cwd=REPO,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == "".join(TEXTS).encode()


def test_sse_events_carry_one_data_line_per_line_of_a_chunk(streamer_url: str) -> None:
    response = httpx.post(
        f"{streamer_url}/streamer/chunks",
        json={"texts": ["\n", "", "a\nb"]},
        headers={"accept": "text/event-stream"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    assert response.content == b"data: \ndata: \n\ndata: \n\ndata: a\ndata: b\n\n"


def test_plain_stream_is_the_chunks_bytes_back_to_back(streamer_url: str, tmp_path: Path) -> None:
    chunks = [b"", b"\n", b"\r\n", b"\xff\xfe not utf-8 \x00", "é".encode(), b"\n\n"]

    response = httpx.post(
        f"{streamer_url}/streamer/octets", json={"hex_chunks": [chunk.hex() for chunk in chunks]}, timeout=TIMEOUT
    )

    assert response.status_code == 200
    assert response.content == b"".join(chunks)
