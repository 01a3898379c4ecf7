"""Request heads are bounded and slow clients cut off in the HTTP protocol (gateway/limits.py), as the bytes arrive and
before any app code or auth: real servers, raw sockets."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from _auth import owner
from _memory import peak_rss_bytes, reset_peak_rss
from _raw_http import RawResponse, connect, exchange, read_response, send_all

from fnserve.settings import Settings, Timeouts
from fnserve.testing import run_server, wait_until

MIB = 1024 * 1024
TIMEOUT_S = 1.0  # the module server's head and body timeouts
HEAD = b"GET /-/healthz HTTP/1.1\r\nhost: test\r\n"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with the default size limits and 1 s head, body and write timeouts."""
    with run_server(
        home=tmp_path_factory.mktemp("limits"),
        graceful_shutdown_s=2,
        header_read_s=TIMEOUT_S,
        body_idle_s=TIMEOUT_S,
        write_idle_s=TIMEOUT_S,
    ) as url:
        yield url


def headers(count: int, size: int = 10) -> bytes:
    """`count` header lines of `size` bytes each (name, colon, space and value)."""
    return b"".join(b"x-h%05d: %s\r\n" % (i, b"v" * (size - 9)) for i in range(count))


def refused(response: RawResponse, status: int, code: str, mentions: str) -> None:
    assert response.status == status, response
    error = response.error()
    assert error["code"] == code
    assert mentions in error["message"]
    assert response.headers["connection"] == "close"
    assert response.closed


@pytest.mark.parametrize("path", [b"/v1/services", b"/echo/echo", b"/-/healthz"])
@pytest.mark.parametrize(
    ("request_head", "status", "code", "mentions"),
    [
        (b"GET {path}?" + b"q" * 9000 + b" HTTP/1.1\r\n", 414, "uri_too_long", "FNSERVE_MAX_REQUEST_LINE_BYTES"),
        (b"GET {path} HTTP/1.1\r\nx-big: " + b"a" * 9000 + b"\r\n", 431, "headers_too_large", "HEADER_LINE_BYTES"),
        (b"GET {path} HTTP/1.1\r\n" + headers(101), 431, "headers_too_large", "FNSERVE_MAX_HEADERS"),
        (b"GET {path} HTTP/1.1\r\n" + headers(5000), 431, "headers_too_large", "FNSERVE_MAX_HEADERS"),
        (b"GET {path} HTTP/1.1\r\n" + headers(5, 7000), 431, "headers_too_large", "FNSERVE_MAX_HEAD_BYTES"),
        (b"GET {path} HTTP/1.1\r\nx-big: " + b"a" * MIB + b"\r\n", 431, "headers_too_large", "FNSERVE_MAX_HEAD_BYTES"),
    ],
    ids=["request-line-9k", "header-line-9k", "101-headers", "5000-headers", "head-35k", "header-1mib"],
)
def test_head_over_a_limit_is_refused_before_auth_and_closed(
    url: str, path: bytes, request_head: bytes, status: int, code: str, mentions: str
) -> None:
    """1. No credential is sent, to `/v1` (owner only), the gateway and the internals alike.
    2. The answer is the limit's status and code in the JSON envelope, naming the setting; the connection closes."""
    response = exchange(url, request_head.replace(b"{path}", path) + b"\r\n")
    refused(response, status, code, mentions)


def test_heads_at_the_limits_are_served(url: str) -> None:
    """The limits are nginx's: an 8 KiB request line, 8 KiB header lines, 100 headers, 32 KiB in all."""
    line = b"GET /-/healthz?" + b"q" * (8192 - 30) + b" HTTP/1.1\r\n"
    assert len(line) < 8192
    assert exchange(url, line + b"host: test\r\n\r\n").status == 200
    header_8k = b"x-big: " + b"a" * (8192 - 7) + b"\r\n"
    assert exchange(url, HEAD + header_8k + b"\r\n").status == 200
    assert exchange(url, HEAD + headers(99) + b"\r\n").status == 200  # with `host`, 100
    assert exchange(url, HEAD + headers(3, 8000) + b"\r\n").status == 200  # 24 KiB


def test_malformed_request_gets_the_envelope(url: str) -> None:
    refused(exchange(url, b"BLAH / HTTP/1.1\r\n\r\n"), 400, "invalid_request", "malformed HTTP request")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak RSS through Linux /proc")
def test_huge_headers_are_refused_as_they_arrive_without_being_held(url: str) -> None:
    """1. Three connections each start a 32 MiB header line (no credential), sent 64 KiB at a time, and stop when
       an answer comes, as curl does.
    2. Each is answered 431 long before its end: the limit applies while the bytes arrive.
    3. The process (server included) peaked less than 16 MiB above where it started (it held 3 x 200 MB before)."""
    piece = b"a" * 65536
    total = 32 * MIB
    sockets = [connect(url) for _ in range(3)]
    reset_peak_rss()
    before = peak_rss_bytes()
    sent = []
    for sock in sockets:
        sock.sendall(b"GET /v1/services HTTP/1.1\r\nx-big: ")
        sent.append(_send_until_answered(sock, piece, total))
    responses = [read_response(sock) for sock in sockets]
    grown = peak_rss_bytes() - before
    for sock in sockets:
        sock.close()
    for response, count in zip(responses, sent, strict=True):
        refused(response, 431, "headers_too_large", "FNSERVE_MAX_HEAD_BYTES")
        assert count < total
    assert grown < 16 * MIB, f"peak RSS grew {grown / MIB:.1f} MiB"


def _send_until_answered(sock: socket.socket, piece: bytes, total: int) -> int:
    sent = 0
    while sent < total:
        sent += send_all(sock, [piece])
        if select.select([sock], [], [], 0)[0]:
            break
    return sent


def test_trailers_over_the_head_limit_are_refused(url: str) -> None:
    """A chunked body whose trailer section goes on past 32 KiB is a head too big: 431, before the app answers."""
    with connect(url) as sock:
        sock.sendall(
            b"PUT /v1/environments/trailers HTTP/1.1\r\ntransfer-encoding: chunked\r\nauthorization: "
            + owner(url)["authorization"].encode()
            + b"\r\n\r\n2\r\n{}\r\n0\r\nx-trailer: "
        )
        _send_until_answered(sock, b"a" * 4096, 4 * MIB)
        refused(read_response(sock), 431, "headers_too_large", "trailers")


# -- slow clients ----------------------------------------------------------------------------------------------------


def test_slow_heads_and_bodies_are_cut_off_while_others_are_served(url: str) -> None:
    """
    1. 150 connections send a request head, and 150 a `/v1` request body (owner key, 5,000 bytes announced), one
       byte each every 0.2 s, and a few healthz requests are made meanwhile.
    2. Every slow connection is answered 408 `request_timeout` and closed within the 1 s timeout (plus its timer's
       slack and this machine's), and every healthz request is answered at once.
    """
    key = owner(url)["authorization"].encode()
    body_head = b"PUT /v1/environments/slow HTTP/1.1\r\ncontent-length: 5000\r\nauthorization: " + key + b"\r\n\r\n"
    slow: dict[socket.socket, bytes] = {}  # what each has been answered
    trickle: dict[socket.socket, bytes] = {}  # the byte each sends: more of a header value, or JSON's blanks
    for index in range(300):
        sock = connect(url)
        sock.setblocking(False)
        sock.send(b"GET /-/healthz HTTP/1.1\r\nx-slow: " if index < 150 else body_head + b'{"requirements": [')
        slow[sock] = b""
        trickle[sock] = b"a" if index < 150 else b" "
    started = time.monotonic()
    closed_after: dict[socket.socket, float] = {}
    served_s: list[float] = []
    stop = threading.Event()

    def healthz() -> None:
        while not stop.is_set():
            began = time.monotonic()
            assert httpx.get(f"{url}/-/healthz", timeout=5).status_code == 200
            served_s.append(time.monotonic() - began)
            stop.wait(0.3)

    checker = threading.Thread(target=healthz)
    checker.start()
    try:
        while len(closed_after) < len(slow) and time.monotonic() - started < 10:
            for sock in slow:
                if sock not in closed_after:
                    with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                        sock.send(trickle[sock])
            deadline = time.monotonic() + 0.2
            while (left := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([s for s in slow if s not in closed_after], [], [], left)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    slow[sock] += data
                    if not data:
                        closed_after[sock] = time.monotonic() - started
    finally:
        stop.set()
        checker.join(timeout=10)
        for sock in slow:
            sock.close()
    assert len(closed_after) == len(slow), f"{len(slow) - len(closed_after)} slow connections still open after 10 s"
    assert max(closed_after.values()) < TIMEOUT_S + 3.0, sorted(closed_after.values())[-5:]
    for answer in slow.values():
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert served_s
    assert max(served_s) < 2.0, served_s


def test_connection_that_sends_nothing_is_closed_quietly(url: str) -> None:
    with connect(url) as sock:
        began = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - began < TIMEOUT_S + 3.0


def test_body_that_keeps_coming_is_not_cut_off(url: str) -> None:
    """A body that takes 3 s in all (3x the timeout) but brings 2 KiB every half second is read whole and served."""
    body = b'{"requirements": []' + b" " * 12 * 1024 + b"}"
    head = b"PUT /v1/environments/steady HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        len(body)
    )
    with connect(url) as sock:
        sock.sendall(head + b"authorization: " + owner(url)["authorization"].encode() + b"\r\n\r\n")
        for start in range(0, len(body), 2048):
            sock.sendall(body[start : start + 2048])
            time.sleep(0.5)
        response = read_response(sock)
    assert response.status == 200, response


def test_client_that_reads_nothing_of_its_responses_is_let_go(url: str) -> None:
    """1. 40 pipelined requests for Swagger UI's 1.4 MB script, and not a byte of the answers read: the socket
       buffers fill, and the server's writes wait.
    2. Within the 1 s write timeout (plus slack) the server has let the connection go: its end has no file left."""
    with connect(url) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /-/docs/assets/swagger-ui-bundle.js HTTP/1.1\r\nhost: test\r\n\r\n" * 40)
        wait_until(lambda: _server_end_open(sock), what="the server's end accepted")
        wait_until(lambda: not _server_end_open(sock), timeout_s=TIMEOUT_S + 4, what="the server's end closed")


def _server_end_open(sock: socket.socket) -> bool:
    """Whether the server's end of `sock` (on this machine) is still an open file: a line of /proc/net/tcp from its
    address to ours with an inode."""

    def hex_address(address: tuple[str, int]) -> str:
        return f"{socket.inet_aton(address[0])[::-1].hex().upper()}:{address[1]:04X}"

    server, client = hex_address(sock.getpeername()), hex_address(sock.getsockname())
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == server and fields[2] == client and fields[9] != "0":
            return True
    return False


def test_head_limits_and_timeouts_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1. FNSERVE_* variables set each limit and both timeouts (`none`: no limit); bad values are refused.
    2. A server with lower limits refuses what the defaults allow."""
    monkeypatch.setenv("FNSERVE_MAX_REQUEST_LINE_BYTES", "1000")
    monkeypatch.setenv("FNSERVE_MAX_HEADER_LINE_BYTES", "500")
    monkeypatch.setenv("FNSERVE_MAX_HEADERS", "10")
    monkeypatch.setenv("FNSERVE_MAX_HEAD_BYTES", "2000")
    monkeypatch.setenv("FNSERVE_MAX_ARTIFACT_BYTES", "4096")
    monkeypatch.setenv("FNSERVE_HEADER_READ_TIMEOUT_S", "2.5")
    monkeypatch.setenv("FNSERVE_BODY_IDLE_TIMEOUT_S", "none")
    monkeypatch.setenv("FNSERVE_WRITE_IDLE_TIMEOUT_S", "90")
    settings = Settings.from_env()
    assert (settings.max_request_line_bytes, settings.max_header_line_bytes, settings.max_headers) == (1000, 500, 10)
    assert (settings.max_head_bytes, settings.max_artifact_bytes) == (2000, 4096)
    assert (settings.timeouts.header_read_s, settings.timeouts.body_idle_s, settings.timeouts.write_idle_s) == (
        2.5,
        None,
        90.0,
    )
    with pytest.raises(ValueError, match="max_headers must be > 0"):
        Settings(max_headers=0).check()
    with pytest.raises(ValueError, match="header_read_s must be > 0"):
        Settings(timeouts=Timeouts(header_read_s=0)).check()

    with run_server(home=tmp_path, settings=settings, graceful_shutdown_s=2) as url:
        assert exchange(url, HEAD + headers(9) + b"\r\n").status == 200
        refused(exchange(url, HEAD + headers(10) + b"\r\n"), 431, "headers_too_large", "FNSERVE_MAX_HEADERS")
        refused(exchange(url, HEAD + headers(1, 600) + b"\r\n"), 431, "headers_too_large", "HEADER_LINE")
        refused(exchange(url, HEAD + headers(5, 450) + b"\r\n"), 431, "headers_too_large", "FNSERVE_MAX_HEAD_BYTES")
        line = b"GET /-/healthz?" + b"q" * 1000 + b" HTTP/1.1\r\n\r\n"
        refused(exchange(url, line), 414, "uri_too_long", "FNSERVE_MAX_REQUEST_LINE_BYTES")
