"""Small ASGI helpers the gateway and the server share: reading bodies, sending JSON and errors."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fnserve.errors import FnserveError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from fnserve.spec import EndpointSpec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# New request ids: random per process, then counted. Unique without a system call per request (they name a
# request in logs and answers; they guard nothing).
_ID_PREFIX = os.urandom(8).hex()
_next_id = itertools.count(1).__next__
JSON = b"application/json"
# What a body that takes more than its limit is told; the gateway's limit is for arguments.
BODY_HINT = "upload large inputs as assets and pass their ids instead"


class ClientDisconnected(Exception):
    """The client left (or was cut off) before its request's body ended: there is nothing to do, or to answer."""


def new_request_id() -> str:
    return f"{_ID_PREFIX}{_next_id():016x}"


def request_id_for(scope: Scope) -> str:
    """The caller's X-Request-ID when it is short and plain, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.match(value):
                return str(value.decode())
            break
    return new_request_id()


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as a dict (the last value of a repeated name wins)."""
    raw = scope["query_string"]
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


def header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


async def body_chunks(
    receive: Receive, limit: int, hint: str = BODY_HINT, *, received: int = 0
) -> AsyncIterator[bytes]:
    """The request body as it arrives, chunk by chunk; PayloadTooLarge once it passes `limit` bytes (with the
    `received` bytes read before), ClientDisconnected when the client leaves before its end."""
    size = received
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, hint)
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int, hint: str = BODY_HINT) -> bytes:
    """The whole request body, as `body_chunks` reads it."""
    parts, _ = await read_body_parts(receive, limit, hint=hint)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def read_body_parts(
    receive: Receive, limit: int, *, up_to: int | None = None, hint: str = BODY_HINT
) -> tuple[list[bytes], bool]:
    """The body's parts until its end, or until `up_to` bytes of it came: (parts, whether the body ended). Its own
    loop, not `body_chunks`: it runs for every JSON call, and an async generator would add its setup to each."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, hint)
            parts.append(chunk)
        if not message.get("more_body", False):
            return parts, True
        if up_to is not None and size >= up_to:
            return parts, False


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body read already, then what the connection says next (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _too_large(limit: int, hint: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is over the {limit} byte limit; {hint}", details={"limit": limit})


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes = b"application/json",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, body: bytes, request_id: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send_bytes(send, status, body, request_id, extra=extra)


async def send_html(send: Send, body: bytes, request_id: str) -> None:
    await send_bytes(send, 200, body, request_id, b"text/html; charset=utf-8")


async def send_error(send: Send, exc: FnserveError, request_id: str) -> None:
    """The one place the gateway turns an error into a response: the JSON envelope plus its headers."""
    extra = tuple((name.encode(), value.encode()) for name, value in exc.headers().items())
    await send_json(send, exc.http_status, exc.to_json(request_id), request_id, extra)


def is_json(content_type: bytes) -> bool:
    """Whether a content-type header names JSON: `application/json` or `application/*+json`, parameters allowed."""
    if content_type == JSON:
        return True
    media_type = content_type.partition(b";")[0].strip().lower()
    return media_type == JSON or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))


def require_json(content_type: bytes | None, body: bytes) -> None:
    """Refuse a body sent as anything but JSON (415). A body with no content type is taken as JSON, as clients that
    send bytes without saying what they are (`httpx.post(content=...)`, `fetch` with a Blob) expect."""
    if body and content_type and not is_json(content_type):
        shown = content_type.decode("latin-1")[:100]
        raise UnsupportedMediaType(
            f"this endpoint takes a JSON body, sent as content-type {shown!r}; send it with "
            "`content-type: application/json` (with curl: -H 'content-type: application/json')",
            details={"expected": "application/json", "received": shown},
        )


def raw_body(endpoint: EndpointSpec, content_type: bytes) -> dict[str, str]:
    """Where a body that is not JSON goes: the endpoint's one `bytes`/`fs.File` parameter, as the CALL's context
    says it (uploads.RAW_BODY_KEY); 415 for an endpoint that takes no file, or several (those take multipart)."""
    files = endpoint.file_parameters
    shown = content_type.decode("latin-1")
    if not files:
        require_json(content_type, b"-")  # raises 415, saying JSON is what it takes
    if len(files) > 1:
        raise UnsupportedMediaType(
            f"this endpoint takes several files ({', '.join(files)}), sent as content-type {shown[:100]!r}; send them "
            "as multipart/form-data (curl -F name=@FILE)",
            details={"expected": "multipart/form-data", "received": shown[:100]},
        )
    return {"parameter": files[0], "content_type": shown}


def parse_json_object(body: bytes) -> None:
    """Refuse a body that is not empty and not a JSON object, before it reaches a replica."""
    if not body:
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON ({exc}); send a JSON object of arguments") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(
            f'request body must be a JSON object of arguments, got {type(parsed).__name__}; for example {{"x": 1}}'
        )
