"""A FastAPI app served whole: path parameters, its own validation, a stream, Server-Sent Events, a WebSocket echo,
an upload, a lifespan; as `fs.asgi_service`, and as a factory scaled to zero."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse

import fnserve as fs


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from the lifespan", "pid": os.getpid()}


def make_app() -> FastAPI:
    app = FastAPI(title="items", lifespan=lifespan)

    @app.get("/items/{item_id}")
    def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "authorization": request.headers.get("authorization"),
            "root_path": request.scope["root_path"],
        }

    @app.get("/state")
    def state(request: Request) -> dict[str, Any]:
        return {"greeting": request.state.greeting, "pid": request.state.pid}

    @app.get("/stream")
    async def stream(count: int = 3, gate: str | None = None) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(count):
                yield f"chunk {index}\n".encode()
                if gate is not None and index == 0:  # hold the rest until the test makes the file
                    while not os.path.exists(gate):
                        await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/download")
    async def download(mib: int = 1) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for index in range(mib * 4):
                yield bytes([index % 256]) * (256 << 10)

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    @app.get("/blob")
    def blob(mib: int = 1) -> Response:
        return Response(bytes(range(256)) * (mib << 12), media_type="application/octet-stream")

    @app.get("/events")
    async def events(count: int = 3) -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            for index in range(count):
                yield f"data: event {index}\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream")

    @app.get("/sleep")
    async def sleep(seconds: float, marker: str | None = None) -> dict[str, float]:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if marker is not None:
                with open(marker, "w") as file:
                    file.write("cancelled")
            raise
        return {"slept": seconds}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, marker: str | None = None) -> None:
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    if marker is not None:  # the app hears its client leave, with the code
                        with open(marker, "w") as file:
                            file.write(str(message.get("code")))
                    return
                if message.get("text") == "close":
                    await websocket.close(code=4001, reason="asked to")
                    return
                if message.get("text") is not None:
                    await websocket.send_text("echo: " + message["text"])
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect:
            return

    return app


app = make_app()
items = fs.asgi_service(app, name="items", max_body_bytes=20 << 20)
public_items = fs.asgi_service(make_app(), name="public-items", auth=False)


@fs.service(autoscaling=fs.Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=0.5), auth=False)
def lazy_items() -> FastAPI:
    """A factory: the app is made once in the replica."""
    return make_app()


@fs.service(auth=False)
def broken_lifespan() -> FastAPI:
    @asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot reach the database")
        yield

    return FastAPI(lifespan=failing)
