"""The replica protocol: length-prefixed msgpack frames, multiplexed by request id.

Each frame is a 4-byte big-endian length, then a msgpack array whose first item is a `Kind`.
Both ends (the server's `ReplicaConnection` and the worker) use `encode` and `FrameReader`.

    server → replica   CALL     [kind, request_id, endpoint_index, body: bytes, path: dict, query: dict, context?]
                                context: {"job_id", "attempt", "max_attempts", "assets": {id: path},
                                "raw": {"parameter", "content_type"}, "files": {name: [content_type, filename, data]},
                                "request": {"method", "path", "headers", "query"}}, all optional; "raw": the body is
                                the file for that parameter, "files": a form's file parts (uploads.py); "request": the
                                body and these go to the endpoint's fs.Request parameter (request.py)
                       CANCEL   [kind, request_id]
                       PING     [kind, ping_id]
                       SHUTDOWN [kind]
    replica → server   HELLO    [kind, replica_id, pid, credential?]
                                credential: the secret the server gave this replica at spawn (its environment); a
                                HELLO without the expected one is refused (composition/credentials.py)
                       READY    [kind, api: dict]                 initializer done
                       INIT_FAILED [kind, message, traceback of the user's frames]
                       RESULT   [kind, request_id, json: bytes]
                       MEDIA    [kind, request_id, content: bytes, media_type: str, status: int, headers: [[str, str]]]
                                a result that is not JSON (bytes, fs.Response, fs.FileResponse: responses.py); a frame
                                of its own so that RESULT, the JSON path, carries nothing more
                       ERROR    [kind, request_id, code, message, details | None]
                       CHUNK    [kind, request_id, data: bytes]
                       END      [kind, request_id]
                       PONG     [kind, ping_id, load: int, checking: bool]
                                load = calls in progress; checking: the service's `check_health()` runs now, and a
                                HEALTH frame with its result follows (a PONG without it means False)
                       HEALTH   [kind, ping_id, passed: bool, message: str | None]
                                message says why a check failed: the exception, or that it returned False
                       BATCH    [kind, endpoint_index, size: int, wait_s: float]
                                a batched endpoint (`@fs.batch`) started a batch of `size` calls, the first of which
                                waited `wait_s` for it; one frame per batch, for /metrics, never for other endpoints
                       MODELS   [kind, model_ids: [str], loads: int, evictions: int]
                                the models its `@fs.multiplexed` loaders hold or are loading (least recently used
                                first), and how many loads and evictions it made so far: once before READY (then the
                                server looks for model ids in this service's calls), then whenever they change; never
                                for a service without such a loader (composition/model_cache.py). A CALL that names a
                                model carries it in its context: {"model_id": str}

An app service (an ASGI app served as it is: fnserve/apps/, docs/APPS.md) takes HTTP requests and WebSockets whole.
An ordinary endpoint meets only BODY and BODY_ACK, for a large upload; CALL/RESULT do no more work than before.

    server → replica   HTTP     [kind, request_id, head: dict, body: bytes, more_body: bool]
                                head: {"method", "path", "raw_path", "root_path", "query_string", "headers": [[bytes,
                                bytes]], "client": [host, port] | None, "http_version", "scheme"}: an ASGI http
                                scope's facts; `path` is the whole path, `root_path` the route prefix (plus
                                /-/versions/N when pinned by path). `body`: the body's first part, all of it unless
                                `more_body`, when BODY frames follow
                       BODY     [kind, request_id, data: bytes, more_body: bool, part?, fields?]
                                the request body's next part, sent as it arrives from the client; the last one has
                                more_body False. Also follows a CALL whose context has "upload" (a large file, spooled
                                by the replica: gateway/streamed_upload.py, runtime/spool.py); for a multipart upload,
                                `part` ([name, content_type, filename]) opens each file part and the last frame has the
                                form's `fields`
                       BODY_ACK [kind, request_id, sent: int]
                                the client took this many more bytes of the app's answer: the replica keeps at most
                                BODY_WINDOW_BYTES of it unacknowledged, so a slow client slows the app, not memory
                       WS_OPEN  [kind, request_id, head: dict]
                                a WebSocket to the app: head as HTTP's, plus "subprotocols": [str]
                       WS_MESSAGE [kind, request_id, data: str | bytes]   both ways: one text or binary message
                       WS_CLOSE [kind, request_id, code: int, reason: str]
                                both ways: that side closed (replica → server before WS_ACCEPT: refused)
    replica → server   START    [kind, request_id, status: int, headers: [[bytes, bytes]]]
                                the response's head; CHUNK frames carry its body and END ends it (ERROR instead
                                when the app failed before START)
                       BODY_ACK [kind, request_id, consumed: int]
                                the app (or the spool) took this many more body bytes: the server keeps at most
                                BODY_WINDOW_BYTES sent and not yet acknowledged, so a slow app slows the upload
                                instead of filling the replica's memory (the same window, the other way, as above)
                       WS_ACCEPT [kind, request_id, subprotocol: str | None, headers: [[bytes, bytes]]]

Handles (composition/, docs/COMPOSITION.md): a replica calls another service over its own connection. The call ids
are the replica's, a namespace apart from the server's CALL ids; the answer comes back in the frames a replica sends,
the other way round.

    replica → server   HANDLE_CALL [kind, call_id, target: str, version: int | None, op: str, name: str,
                                body: bytes, options: dict]
                                op: "call" (name: the endpoint's method name, as the Python client names it;
                                options "stream": True, False or None for either), "submit" (queue it as a job), "job"
                                (name: a job id; options "wait_s": how long to wait for it to finish); options also
                                "request_id" (the inbound call's) and "timeout_s" (what is left of its deadline)
                       CANCEL   [kind, call_id]    the replica gave up on its handle call: the server cancels it
    server → replica   RESULT, MEDIA, ERROR, CHUNK, END under the handle call's id, as above
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from typing import Any

import msgpack

_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 1 << 30
# Body bytes in flight for one exchange, sent and not yet acknowledged (BODY_ACK): a request's to the replica, an app's
# answer to the client.
BODY_WINDOW_BYTES = 1 << 20
# A request body's parts are sent in frames of at most this many bytes.
BODY_FRAME_BYTES = 256 << 10
# Bytes taken before the taker says so (BODY_ACK); well under the window.
ACK_BYTES = 128 << 10


class Kind(enum.IntEnum):
    CALL = 1
    CANCEL = 2
    PING = 3
    SHUTDOWN = 4
    HELLO = 10
    READY = 11
    INIT_FAILED = 12
    RESULT = 13
    ERROR = 14
    CHUNK = 15
    END = 16
    PONG = 17
    HEALTH = 18
    MEDIA = 19
    HTTP = 20
    BODY = 21
    START = 22
    BODY_ACK = 23
    WS_OPEN = 24
    WS_ACCEPT = 25
    WS_MESSAGE = 26
    WS_CLOSE = 27
    BATCH = 36
    MODELS = 40
    HANDLE_CALL = 41


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame."""


_packb = msgpack.Packer(use_bin_type=True).pack
# Frames from this size on are read and written without copying them whole (a 1 MiB image took a replica and the
# gateway 2 ms more per call with the copies, most of it page faults of fresh allocations).
LARGE_FRAME_BYTES = 64 * 1024


# A replica socket's send buffer: a 1 MiB answer or upload goes in one write rather than five (Linux's default is
# 208 KiB), which took a third off a replica's CPU per 1 MiB answer. The system's limit (net.core.wmem_max) caps it.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


def widen_send_buffer(transport: asyncio.BaseTransport) -> None:
    """Give a replica connection's socket `SOCKET_BUFFER_BYTES` to send from, where the system allows."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)


def encode(*message: Any) -> bytes:
    """One frame: header + msgpack array."""
    payload: bytes = _packb(message)
    return _HEADER.pack(len(payload)) + payload


def _unpack(frame: bytes | memoryview) -> list[Any]:
    message = msgpack.unpackb(frame, raw=False, use_list=True, strict_map_key=False)
    if not isinstance(message, list) or not message:
        raise ProtocolError(f"frame is not a non-empty array: {message!r:.100}")
    return message


class FrameReader:
    """Accumulates bytes from a socket and yields complete messages.

    What arrives is parsed where it lies; only a frame split across reads is kept, as the reads themselves, and
    joined once when its last byte arrives."""

    __slots__ = ("_need", "_parts", "_waiting")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # the reads that hold an unfinished frame
        self._waiting = 0  # their bytes
        self._need = 4  # the bytes that frame takes: its header's 4 until the header has come

    def feed(self, data: bytes) -> list[list[Any]]:
        if self._parts:
            self._parts.append(data)
            self._waiting += len(data)
            if self._waiting < self._need:
                return []
            data = b"".join(self._parts)
            self._parts.clear()
        messages: list[list[Any]] = []
        offset = 0
        size = len(data)
        need = 4
        while size - offset >= 4:
            (length,) = _HEADER.unpack_from(data, offset)
            if length > MAX_FRAME_BYTES:
                raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
            end = offset + 4 + length
            if end > size:
                need = 4 + length
                break
            if length < LARGE_FRAME_BYTES:
                messages.append(_unpack(data[offset + 4 : end]))
            else:
                with memoryview(data) as view:
                    messages.append(_unpack(view[offset + 4 : end]))
            offset = end
        if offset < size:
            self._parts.append(data[offset:] if offset else data)
            self._waiting = size - offset
            self._need = need
        return messages


class FrameWriter:
    """Queues frames and writes the ones queued in the same loop iteration together (fewer syscalls under load)."""

    __slots__ = ("_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []  # headers and payloads, in turn
        self._pending_bytes = 0

    def send(self, *message: Any) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        payload: bytes = _packb(message)
        self._pending += (_HEADER.pack(len(payload)), payload)
        self._pending_bytes += len(payload)

    def _flush(self) -> None:
        pending = self._pending
        large = self._pending_bytes >= LARGE_FRAME_BYTES
        self._pending = []
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        if large:  # uvloop writes the pieces with one writev, without joining them first
            self._transport.writelines(pending)
        else:
            self._transport.write(b"".join(pending))

    def flush(self) -> None:
        """Write the queued frames now; call it before closing the transport, which would drop them."""
        if self._pending:
            self._flush()
