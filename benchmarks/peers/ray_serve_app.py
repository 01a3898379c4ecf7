"""The benchmark app for Ray Serve: the routes of `benchmarks/apps/noop.py`, written the Ray Serve way.

One deployment with a FastAPI ingress (`@serve.ingress`), the way Ray Serve serves typed HTTP APIs, at the
default single replica and Serve's default `max_ongoing_requests` (5). This script starts a local single-node Ray
on loopback (no cluster to join, usage stats off), Serve's HTTP proxy on `--port` in its high-throughput mode,
and the application at route prefix `/`, with Serve's access log off; then it waits until stopped (SIGTERM or
SIGINT shut Ray down). Runs in Ray's own venv (`benchmarks/peer_envs.py`):

    ~/.cache/fnserve-bench/peers/ray/bin/python benchmarks/peers/ray_serve_app.py --port 8123
"""
# mypy: ignore-errors
# (Ray is not installed in the repo's venv, so its types are unknown to mypy there.) No `from __future__ import
# annotations`: FastAPI reads the handlers' annotations to build the routes, and needs the classes themselves.

import os
from collections.abc import Iterator

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read at `import ray`: no usage report
# Ray Serve's high-throughput mode (Ray 2.56+; gRPC between proxy and replicas, direct ingress, GC frozen after
# start): Ray's documented setting for throughput-bound serving. It read 170 req/s at concurrency 1 here, 130 without.
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
# A single-node Ray on loopback only (as Ray runs on macOS and Windows), not on the machine's network address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from fastapi import FastAPI, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from ray import serve
from ray_runner import serve_until_stopped


class EchoRequest(BaseModel):
    name: str
    tags: list[str]
    values: list[int]
    meta: dict[str, str]


class StreamRequest(BaseModel):
    chunks: int = 100


class DownloadRequest(BaseModel):
    size: int


# benchmarks/scenarios.py's PAYLOAD: the bytes `/noop/download` answers.
PAYLOAD = bytes(range(256)) * 4096


app = FastAPI()


def tokens(chunks: int) -> Iterator[str]:
    for i in range(chunks):
        yield f"token {i:04d}\n"


@serve.deployment
@serve.ingress(app)
class Bench:
    @app.post("/noop/noop")
    def noop(self) -> str:
        return "ok"

    @app.post("/noop/echo")
    def echo(self, body: EchoRequest) -> EchoRequest:
        return body

    @app.post("/noop/stream")
    def stream(self, body: StreamRequest) -> StreamingResponse:
        return StreamingResponse(tokens(body.chunks), media_type="text/plain")

    @app.post("/noop/upload")
    async def upload(self, image: UploadFile) -> dict[str, int]:
        return {"bytes": len(await image.read())}

    @app.post("/noop/download")
    def download(self, body: DownloadRequest) -> Response:
        return Response(PAYLOAD[: body.size], media_type="application/octet-stream")


def main() -> None:
    serve_until_stopped(Bench.bind(), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
