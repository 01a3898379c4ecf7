"""Requests to an app service (an ASGI app served whole: docs/APPS.md) passed through to one of its replicas.

Every method and path under the route prefix goes to the app, but for what fnserve keeps under `/-/` (`/-/ping`,
`/-/info`, `/-/versions/N/...`: `APP_RESERVED`). The body goes in parts as the client sends it (never whole in the
gateway), the answer's head, chunks and end come back as the app sends them, so streams and Server-Sent Events pass
through as they are. Replica choice, slots, cold starts, the invocation timeout (until the answer's head) and a
client's disconnect (which cancels the app's work) are the ordinary calls' (gateway/app.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fnserve.errors import FnserveError, InvocationTimeout, PayloadTooLarge
from fnserve.gateway.exchange import STREAM_END, Exchange
from fnserve.gateway.http import ClientDisconnected, Receive, Scope, Send
from fnserve.runtime.protocol import BODY_FRAME_BYTES, Kind

if TYPE_CHECKING:
    from fnserve.controlplane.supervisor import LiveDeployment
    from fnserve.gateway.app import Gateway

logger = logging.getLogger("fnserve.gateway")

# What fnserve answers itself under an app's prefix; everything else is the app's (its own /docs, /ping, /health).
APP_PING_PATH = "/-/ping"
APP_INFO_PATH = "/-/info"
APP_RESERVED = (APP_PING_PATH, APP_INFO_PATH, "/-/versions/N/...")
_DISCONNECTED: Any = object()  # put in the exchange's queue when the client leaves
_BODY_HINT = "raise the service's max_body_bytes (fs.asgi_service(..., max_body_bytes=...)) for larger uploads"


def root_path_of(path: str, rest: str) -> str:
    """The part of a request's path that is the service's, not the app's: its route prefix (and `/-/versions/N` when
    pinned by path). ASGI apps see it as `root_path`, so their links and their own docs work under it."""
    if rest == "/" and not path.endswith("/"):  # the prefix itself, with no slash after it
        return path
    return path[: len(path) - len(rest)]


def request_head(scope: Scope, root_path: str, *, drop_authorization: bool) -> dict[str, Any]:
    """The facts of an ASGI scope a replica rebuilds it from (HTTP and WS_OPEN frames); the fnserve token is not the
    app's."""
    headers = [
        [name, value] for name, value in scope["headers"] if not (drop_authorization and name == b"authorization")
    ]
    client = scope.get("client")
    return {
        "method": scope.get("method", "GET"),
        "path": scope["path"],
        "raw_path": scope.get("raw_path"),
        "root_path": root_path,
        "query_string": scope.get("query_string", b""),
        "headers": headers,
        "client": list(client) if client else None,
        "http_version": scope.get("http_version", "1.1"),
        "scheme": scope.get("scheme", "http"),
    }


async def pass_through(
    gateway: Gateway, scope: Scope, receive: Receive, send: Send, request_id: str, live: LiveDeployment, root_path: str
) -> None:
    """One request to the app, answered by it. Errors before the app's answer starts are fnserve's ordinary error
    responses; a replica lost after it started cuts the response short (the client sees it incomplete)."""
    limit = live.spec.max_body_bytes or gateway.max_body_bytes
    message = await receive()  # the body's first part travels with the head: a GET is one frame
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    more = bool(message.get("more_body", False))
    if len(body) > limit:
        raise _too_large(limit)
    head = request_head(scope, root_path, drop_authorization=live.spec.auth)
    connection = await gateway.replica_for(live)
    first, rest = body[:BODY_FRAME_BYTES], body[BODY_FRAME_BYTES:]
    exchange = connection.open_exchange(Kind.HTTP, head, first, more or bool(rest))
    pump = asyncio.ensure_future(_pump_body(receive, exchange, rest, more, limit, len(body)))
    loop = asyncio.get_running_loop()
    timeout_s = gateway.timeout_s
    timer = None
    if timeout_s is not None:
        expired = InvocationTimeout(
            f"the app did not start its answer within {timeout_s:g} s, and the request was cancelled; make it "
            "answer sooner, or start a streamed answer early"
        )
        timer = loop.call_later(timeout_s, exchange.queue.put_nowait, expired)
    started = False
    try:
        while True:
            for item in await exchange.next_items():
                if item.__class__ is bytes:
                    if item:
                        await send({"type": "http.response.body", "body": item, "more_body": True})
                        exchange.taken(len(item))  # sent means the socket took it: uvicorn waits while it is full
                elif item.__class__ is tuple and item[0] == "start" and not started:
                    started = True
                    if timer is not None:
                        timer.cancel()
                    headers = [(bytes(name), bytes(value)) for name, value in item[2]]
                    headers.append((b"x-request-id", request_id.encode()))
                    await send({"type": "http.response.start", "status": item[1], "headers": headers})
                elif item is STREAM_END:
                    await send({"type": "http.response.body", "body": b""})
                    return
                elif item is _DISCONNECTED:
                    return  # the client left; closing the exchange cancels the app's work
                elif isinstance(item, FnserveError):
                    if not started:
                        raise item
                    # Its head is sent: the response is left incomplete, and uvicorn closes the connection.
                    logger.warning(
                        "Request [%s] to %s cut short: %s %s", request_id, live.label, item.code, item.message
                    )
                    return
    finally:
        if timer is not None:
            timer.cancel()
        pump.cancel()
        exchange.close()


async def _pump_body(receive: Receive, exchange: Exchange, rest: bytes, more: bool, limit: int, received: int) -> None:
    """Send the body's parts to the replica as they arrive (each when the replica has room for it), then wait for the
    client to leave. Its problems go into the exchange's queue for the request's task to answer."""
    try:
        if rest:
            await exchange.send_body(rest, more)
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                exchange.queue.put_nowait(_DISCONNECTED)
                return
            chunk = message.get("body", b"")
            more = bool(message.get("more_body", False))
            received += len(chunk)
            if received > limit:
                exchange.queue.put_nowait(_too_large(limit))
                return
            if chunk or not more:
                await exchange.send_body(chunk, more)
        while True:  # the body is whole: what comes now is the client leaving
            message = await receive()
            if message["type"] == "http.disconnect":
                exchange.queue.put_nowait(_DISCONNECTED)
                return
    except FnserveError as exc:  # the replica is gone
        exchange.queue.put_nowait(exc)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is over the {limit} byte limit; {_BODY_HINT}", details={"limit": limit})
