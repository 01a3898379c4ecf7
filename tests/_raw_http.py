"""HTTP over plain sockets, for requests no HTTP client sends: heads over their limits, malformed, or sent slowly."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after it

    def error(self) -> dict[str, Any]:
        """The error envelope's content, once its shape and request id are checked."""
        assert self.headers["content-type"] == "application/json", self
        error: dict[str, Any] = orjson.loads(self.body)["error"]
        assert error["request_id"] == self.headers["x-request-id"]
        return error


def connect(url: str, timeout_s: float = 10.0) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def send_all(sock: socket.socket, parts: Iterable[bytes]) -> int:
    """Send what it can of `parts`; stops (without failing) when the server has closed. Returns the bytes sent."""
    sent = 0
    try:
        for part in parts:
            sock.sendall(part)
            sent += len(part)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def read_response(sock: socket.socket) -> RawResponse:
    """One response, and whether the connection ends after it (read until EOF when it says `connection: close`)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside a response body"
        rest += chunk
    closed = False
    if headers.get("connection") == "close":
        closed = wait_closed(sock)
    return RawResponse(int(status_line.split()[1]), headers, rest[:length], closed)


def wait_closed(sock: socket.socket) -> bool:
    """Whether the server ends the connection (EOF or reset) within the socket's timeout; what it sends is dropped."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def exchange(url: str, *parts: bytes) -> RawResponse:
    with connect(url) as sock:
        send_all(sock, parts)
        return read_response(sock)
