"""Streaming endpoints through the gateway: chunks as produced, disconnects, SSE framing, errors mid-stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from _deploy import deployed
from stream_ticker import stream_ticker
from streamer import streamer

import fnserve as fs
from fnserve.errors import FunctionError
from fnserve.testing import wait_until

READ_TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def deployment(server_url: str) -> Iterator[fs.Deployment]:
    with deployed(streamer, server_url) as deployment:
        yield deployment


def read_at_least(chunks: Iterator[str], size: int) -> str:
    """Read chunks until at least `size` characters came (one chunk may reach us in pieces).

    Keep a reference to `chunks` while the response should stay open: when httpx's iterator is garbage
    collected mid-stream, it closes the connection, which the server sees as a disconnect.
    """
    text = ""
    while len(text) < size:
        text += next(chunks)
    return text


def replica_in_flight(client: fs.Client, service_name: str) -> list[int]:
    return [replica["in_flight"] for replica in client.get_service(service_name)["replicas"]]


def sse_events(body: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.split("\n\n"):
        if not block:
            continue
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        events.append((event, "\n".join(data)))
    return events


def test_first_chunk_arrives_while_generator_is_blocked(deployment: fs.Deployment, tmp_path: Path) -> None:
    """
    1. Call /gated, which yields 'first' and then waits for a release file that does not exist yet.
    2. 'first' arrives on its own while the generator is blocked.
    3. Create the release file: 'second' follows and the stream ends.
    """
    release, marker = tmp_path / "release", tmp_path / "marker"
    arguments = {"release": str(release), "marker": str(marker)}
    with httpx.stream("POST", f"{deployment.address}/gated", json=arguments, timeout=READ_TIMEOUT) as response:
        assert response.status_code == 200
        chunks = response.iter_text()
        assert read_at_least(chunks, len("first")) == "first"
        assert not release.exists()

        release.touch()

        assert "".join(chunks) == "second"
    assert not marker.exists()  # it ran to the end: nothing closed it early


@pytest.mark.parametrize("path", ["/ticks", "/aticks"], ids=["sync-generator", "async-generator"])
def test_disconnect_stops_generator_within_deadline(server_url: str, tmp_path: Path, path: str) -> None:
    """
    1. Call a stream that yields 'first' and then a tick every 10 ms for up to 10 s.
    2. Close the response after 'first'.
    3. The generator is stopped (it writes its marker file) well before it would have finished.
    """
    marker = tmp_path / "marker"
    with deployed(stream_ticker, server_url) as ticker:
        with httpx.stream(
            "POST", ticker.address + path, json={"marker": str(marker)}, timeout=READ_TIMEOUT
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_text()
            assert read_at_least(chunks, len("first")).startswith("first")
            assert not marker.exists()

        # The marker may exist a moment before its text is written.
        wait_until(
            lambda: marker.exists() and marker.read_text() == "closed", timeout_s=3, what="the generator to close"
        )


def test_disconnect_during_blocked_step_closes_generator_when_step_returns(
    deployment: fs.Deployment, client: fs.Client, tmp_path: Path
) -> None:
    """
    1. Call /gated and close the response after 'first', while the generator waits for its release file.
    2. The gateway lets go of the call (no call in flight on the replica), which cancels it in the replica.
    3. Create the release file: the generator's blocked step returns, and instead of running to its end it is
       closed at its next `yield` (it writes its marker file).
    4. The replica logs no traceback for the disconnect, and still serves.
    """
    release, marker = tmp_path / "release", tmp_path / "marker"
    arguments = {"release": str(release), "marker": str(marker)}
    with httpx.stream("POST", f"{deployment.address}/gated", json=arguments, timeout=READ_TIMEOUT) as response:
        assert read_at_least(response.iter_text(), len("first")) == "first"

    wait_until(lambda: replica_in_flight(client, "streamer") == [0], timeout_s=3, what="the call to be released")
    release.touch()

    wait_until(marker.exists, timeout_s=3, what="the generator to be closed")
    logs = "".join(path.read_text() for path in (tmp_path / "home" / "logs" / "streamer").glob("*.log"))
    assert "Traceback" not in logs
    assert list(deployment.gated(release=str(release), marker=str(tmp_path / "unused"))) == ["first", "second"]


@pytest.mark.parametrize(
    ("headers", "content_type", "body"),
    [
        ({"accept": "text/event-stream"}, "text/event-stream", "data: first\n\ndata: second\n\n"),
        ({}, "text/plain; charset=utf-8", "firstsecond"),
    ],
    ids=["sse", "plain"],
)
def test_stream_framing_follows_accept_header(
    deployment: fs.Deployment, tmp_path: Path, headers: dict[str, str], content_type: str, body: str
) -> None:
    release = tmp_path / "release"
    release.touch()
    arguments = {"release": str(release), "marker": str(tmp_path / "marker")}

    response = httpx.post(f"{deployment.address}/gated", json=arguments, headers=headers, timeout=READ_TIMEOUT)

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == body


def test_stream_ends_with_error_event_when_generator_raises_after_first_chunk(deployment: fs.Deployment) -> None:
    """
    1. Call /fails over SSE: it yields 'before', then raises ValueError.
    2. The response started as 200 with 'before', and ends with one `event: error` holding the error envelope:
       code function_error, the exception's type and message, and the request id of the response.
    """
    response = httpx.post(f"{deployment.address}/fails", headers={"accept": "text/event-stream"}, timeout=READ_TIMEOUT)

    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0] == ("message", "before")
    assert [event for event, _ in events[1:]] == ["error"]
    error: dict[str, Any] = orjson.loads(events[1][1])["error"]
    assert error == {
        "code": "function_error",
        "message": "ValueError: mid-stream",
        "request_id": response.headers["x-request-id"],
    }


def test_python_client_raises_function_error_when_stream_fails_midway(deployment: fs.Deployment) -> None:
    chunks = deployment.fails()
    assert next(chunks) == "before"

    with pytest.raises(FunctionError, match="^ValueError: mid-stream$") as raised:
        next(chunks)

    assert raised.value.code == "function_error"


def test_async_generator_of_dicts_streams_json_lines(deployment: fs.Deployment) -> None:
    response = httpx.post(f"{deployment.address}/lines", json={"count": 3}, timeout=READ_TIMEOUT)

    assert response.status_code == 200
    assert response.text == '{"index":0}\n{"index":1}\n{"index":2}\n'
    assert [orjson.loads(line) for line in response.text.splitlines()] == [{"index": i} for i in range(3)]


@pytest.mark.anyio
async def test_async_client_streams_json_lines_from_async_generator(deployment: fs.Deployment) -> None:
    try:
        chunks = await deployment.alines(count=2)
        received = [orjson.loads(chunk) async for chunk in chunks]
    finally:
        await deployment.aclose()

    assert received == [{"index": 0}, {"index": 1}]
