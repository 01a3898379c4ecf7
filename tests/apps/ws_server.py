"""A WebSocket server in a process of its own (Starlette on uvicorn), for a service run as a command: echoes text,
reverses bytes, sends a large message on "big", and closes with 4001 on "close".

    python ws_server.py --port 8080
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="echo.v1" if "echo.v1" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "close":
                await websocket.close(code=4001, reason="asked to")
                return
            if message.get("text") == "big":
                await websocket.send_bytes(bytes(range(256)) * 1024)
            elif message.get("text") is not None:
                await websocket.send_text(f"echo: {message['text']} at {websocket.url.path}")
            else:
                await websocket.send_bytes(bytes(reversed(message["bytes"])))
    except WebSocketDisconnect:
        return


app = Starlette(routes=[Route("/health", health), WebSocketRoute("/ws", echo)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets")


if __name__ == "__main__":
    main()
