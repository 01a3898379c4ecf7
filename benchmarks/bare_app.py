"""The baseline: the same stack fnserve's gateway runs on (uvicorn + uvloop + httptools + Starlette), no platform.

It serves every scenario's route directly, doing the least any JSON endpoint must do: read the body,
parse it, serialize the answer (no validation: the echo's body is only parsed and serialized again). The stream
is an async generator, so no chunk waits for a thread. fnserve's numbers are read as ratios against this app.

    python benchmarks/bare_app.py --port 8123
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


async def noop(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(orjson.dumps("ok"), media_type="application/json")


async def echo(request: Request) -> Response:
    return Response(orjson.dumps(orjson.loads(await request.body())), media_type="application/json")


# benchmarks/scenarios.py's PAYLOAD: the bytes `/download` answers.
PAYLOAD = bytes(range(256)) * 4096


async def upload(request: Request) -> Response:
    async with request.form() as form:
        image = form["image"]
        assert not isinstance(image, str), "the image part is a file"
        size = len(await image.read())
    return Response(orjson.dumps({"bytes": size}), media_type="application/json")


async def download(request: Request) -> Response:
    size = int(orjson.loads(await request.body())["size"])
    return Response(PAYLOAD[:size], media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    chunks = int(orjson.loads(await request.body()).get("chunks", 100))

    async def tokens() -> AsyncIterator[str]:
        for i in range(chunks):
            yield f"token {i:04d}\n"

    return StreamingResponse(tokens(), media_type="text/plain; charset=utf-8")


app = Starlette(
    routes=[
        Route("/noop/noop", noop, methods=["POST"]),
        Route("/noop/echo", echo, methods=["POST"]),
        Route("/noop/stream", stream, methods=["POST"]),
        Route("/noop/upload", upload, methods=["POST"]),
        Route("/noop/download", download, methods=["POST"]),
    ]
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
