"""WebSockets to an app service, relayed to one of its replicas: messages both ways, closed when either side closes.

The handshake is answered only once fnserve's checks passed and the app accepted: a path no app service owns, a
missing or wrong token, a disabled service or a replica that cannot be had is refused with fnserve's error envelope as
an HTTP response (ASGI's `websocket.http.response`), and an app that closes before accepting refuses with 403. A
WebSocket holds one of its replica's slots while it is open, and is counted in the metrics (opened, open now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from fnserve.errors import FnserveError, InternalError, InvocationTimeout, NotFound
from fnserve.gateway.exchange import STREAM_END, Exchange
from fnserve.gateway.http import Receive, Scope, Send, request_id_for
from fnserve.gateway.passthrough import request_head
from fnserve.runtime.protocol import Kind

if TYPE_CHECKING:
    from fnserve.gateway.app import Gateway

logger = logging.getLogger("fnserve.gateway")

# Close codes (RFC 6455): the server failed (the replica was lost), or the client left without a code.
INTERNAL_ERROR = 1011
NO_STATUS = 1005


async def websocket(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """One WebSocket: checked, then relayed until either side closes."""
    request_id = request_id_for(scope)
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    try:
        live, root_path = gateway.resolve_app(scope)
        connection = await gateway.replica_for(live)
        head = request_head(scope, root_path, drop_authorization=live.spec.auth)
        head["subprotocols"] = list(scope.get("subprotocols", ()))
        exchange = connection.open_exchange(Kind.WS_OPEN, head)
    except FnserveError as exc:
        await _refuse(scope, send, exc, request_id)
        return
    except Exception:
        logger.exception("WebSocket [%s] %s failed", request_id, scope["path"])
        await _refuse(
            scope, send, InternalError(f"internal error; the server log has request {request_id}"), request_id
        )
        return
    client_closed = False
    try:
        accepted = await _handshake(gateway, scope, send, exchange, request_id)
        if accepted:
            gateway.metrics.websocket_opened(live.name)
            try:
                client_closed = await _relay(receive, send, exchange)
            finally:
                gateway.metrics.websocket_closed(live.name)
    finally:
        exchange.close(cancel=not client_closed)  # a client's close reaches the app, which returns by itself


async def _handshake(gateway: Gateway, scope: Scope, send: Send, exchange: Exchange, request_id: str) -> bool:
    """Wait (within the invocation timeout) for the app to accept or refuse; True once the client is told it was
    accepted."""
    try:
        async with asyncio.timeout(gateway.timeout_s):
            item = await exchange.queue.get()
    except TimeoutError:
        item = InvocationTimeout(f"the app did not accept the WebSocket within {gateway.timeout_s:g} s")
    if isinstance(item, FnserveError):
        await _refuse(scope, send, item, request_id)
        return False
    if item.__class__ is tuple and item[0] == "accept":
        headers = [(bytes(name), bytes(value)) for name, value in item[2]]
        await send({"type": "websocket.accept", "subprotocol": item[1], "headers": headers})
        return True
    await send({"type": "websocket.close", "code": 1000})  # closed (or ended) before accepting: a 403
    return False


async def _relay(receive: Receive, send: Send, exchange: Exchange) -> bool:
    """Client → replica in a task of its own, replica → client here, until one side closes; True when the client
    closed (and the replica was told)."""
    from_client = asyncio.ensure_future(_from_client(receive, exchange))
    try:
        while not from_client.done():
            getting = asyncio.ensure_future(exchange.next_items())
            await asyncio.wait((getting, from_client), return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return from_client.exception() is None  # the client closed, and the replica was told
            for item in getting.result():
                if item.__class__ is tuple and item[0] == "message":
                    data = item[1]
                    await send(
                        {"type": "websocket.send", "bytes": data}
                        if isinstance(data, bytes)
                        else {"type": "websocket.send", "text": data}
                    )
                elif item.__class__ is tuple and item[0] == "close":
                    await send({"type": "websocket.close", "code": item[1], "reason": item[2] or ""})
                    return False
                elif isinstance(item, FnserveError) or item is STREAM_END:
                    if isinstance(item, FnserveError):
                        logger.warning("WebSocket to the app closed: %s %s", item.code, item.message)
                    await send({"type": "websocket.close", "code": INTERNAL_ERROR if item is not STREAM_END else 1000})
                    return False
        return from_client.exception() is None
    finally:
        if not from_client.done():
            from_client.cancel()
            with contextlib.suppress(BaseException):
                await from_client


async def _from_client(receive: Receive, exchange: Exchange) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            exchange.send_message(text if text is not None else message.get("bytes") or b"")
        elif kind == "websocket.disconnect":
            with contextlib.suppress(FnserveError):
                exchange.send_close(int(message.get("code") or NO_STATUS), str(message.get("reason") or ""))
            return


async def _refuse(scope: Scope, send: Send, error: FnserveError, request_id: str) -> None:
    """Refuse the handshake with fnserve's error response when the server can send one, else a bare 403."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = error.to_json(request_id)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *((name.encode(), value.encode()) for name, value in error.headers().items()),
        ]
        await send({"type": "websocket.http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008})


def not_an_app(name: str) -> NotFound:
    return NotFound(f"Service {name!r} serves no app, so it takes no WebSockets; WebSockets reach app services only")
