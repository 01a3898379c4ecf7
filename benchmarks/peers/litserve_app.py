"""The benchmark app for LitServe: the routes of `benchmarks/apps/noop.py`, written the LitServe way.

One `LitAPI` per route (`/noop/noop`, `/noop/echo`, `/noop/stream`) in one `LitServer`: one inference worker per
device (the default), `log_level="warning"` (no access log) and no generated client file. Its queues between the
HTTP server and the worker are LitServe's default (multiprocessing queues), or ZeroMQ with `--fast-queue`
(`fast_queue=True`, which LitServe recommends above 100 requests/s). The echo request is a pydantic model, so
LitServe validates it as fnserve does.
Runs in LitServe's own venv (`benchmarks/peer_envs.py`):

    ~/.cache/fnserve-bench/peers/litserve/bin/python benchmarks/peers/litserve_app.py --port 8123
"""
# mypy: ignore-errors
# (LitServe is not installed in the repo's venv, so its types are unknown to mypy there.) No `from __future__
# import annotations`: LitServe reads `decode_request`'s annotation to build the route, and needs the class itself.

import argparse
from collections.abc import Iterator

import litserve as ls
from fastapi import Response
from pydantic import BaseModel

# benchmarks/scenarios.py's PAYLOAD: the bytes `/noop/download` answers.
PAYLOAD = bytes(range(256)) * 4096


class EchoRequest(BaseModel):
    name: str
    tags: list[str]
    values: list[int]
    meta: dict[str, str]


class StreamRequest(BaseModel):
    chunks: int = 100


class Noop(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: dict) -> None:
        return None

    def predict(self, x: None) -> str:
        return "ok"

    def encode_response(self, output: str) -> str:
        return output


class Echo(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: EchoRequest) -> EchoRequest:
        return request

    def predict(self, x: EchoRequest) -> EchoRequest:
        return x

    def encode_response(self, output: EchoRequest) -> EchoRequest:
        return output


class Stream(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: StreamRequest) -> int:
        return request.chunks

    def predict(self, chunks: int) -> Iterator[str]:
        for i in range(chunks):
            yield f"token {i:04d}\n"

    def encode_response(self, output):  # no return annotation: LitServe would make it FastAPI's response model
        yield from output


class Upload(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request):  # no annotation: LitServe hands over the parsed form
        return request["image"].file.read()

    def predict(self, data: bytes) -> int:
        return len(data)

    def encode_response(self, size: int) -> dict:
        return {"bytes": size}


class Download(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: dict) -> int:
        return int(request["size"])

    def predict(self, size: int) -> bytes:
        return PAYLOAD[:size]

    def encode_response(self, data: bytes) -> Response:
        return Response(content=data, media_type="application/octet-stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fast-queue", action="store_true", help="ZeroMQ queues (LitServer(fast_queue=True))")
    args = parser.parse_args()
    apis = [
        Noop(api_path="/noop/noop"),
        Echo(api_path="/noop/echo"),
        Stream(api_path="/noop/stream", stream=True),
        Upload(api_path="/noop/upload"),
        Download(api_path="/noop/download"),
    ]
    server = ls.LitServer(apis, accelerator="cpu", fast_queue=args.fast_queue)
    server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
