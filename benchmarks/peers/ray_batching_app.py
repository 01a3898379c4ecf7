"""The batching benchmark's model under Ray Serve: `benchmarks/apps/vectorized.py`, written the Ray Serve way.

One deployment behind a FastAPI ingress: `/vectorized/plain` runs one item per call, `/vectorized/batched` goes
through `@serve.batch` with the same `max_batch_size` and `batch_wait_timeout_s` as fnserve's `@fs.batch`, and
`max_ongoing_requests` is twice the batch size, as fnserve's default for a batching service is (Ray's own default,
5, would cap its batches at 5). Ray runs as in `ray_serve_app.py`: a local single-node Ray on loopback, the
high-throughput mode, the access log off. Runs in Ray's venv (`benchmarks/peer_envs.py`):

    ~/.cache/fnserve-bench/peers/ray/bin/python benchmarks/peers/ray_batching_app.py --port 8123
"""
# mypy: ignore-errors
# (Ray is not installed in the repo's venv.) No `from __future__ import annotations`: FastAPI reads the handlers'
# annotations to build the routes.

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from ray import serve
from ray_runner import serve_until_stopped

# The model of benchmarks/apps/vectorized.py, copied: that file imports fnserve, which Ray's venv does not have.
FEATURES, WIDTH, STEPS, MAX_BATCH_SIZE, BATCH_WAIT_TIMEOUT_S = 16, 64, 400, 64, 0.005


def weights() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    shapes = [(FEATURES, WIDTH), (WIDTH, WIDTH), (WIDTH, FEATURES)]
    return [(rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32) for shape in shapes]


def forward(layers: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    into, recurrent, out = layers
    hidden = np.tanh(x @ into)
    for _ in range(STEPS):
        hidden = np.tanh(hidden @ recurrent + x[:, :1])
    return np.tanh(hidden @ out)


class Item(BaseModel):
    x: list[float]


app = FastAPI()


@serve.deployment(max_ongoing_requests=2 * MAX_BATCH_SIZE)
@serve.ingress(app)
class Vectorized:
    def __init__(self) -> None:
        self.layers = weights()

    @app.post("/vectorized/plain")
    def plain(self, item: Item) -> list[float]:
        return forward(self.layers, np.asarray([item.x], dtype=np.float32))[0].tolist()

    @app.post("/vectorized/batched")
    async def batched(self, item: Item) -> list[float]:
        return await self.run_batch(item.x)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    async def run_batch(self, xs: list[list[float]]) -> list[list[float]]:
        return forward(self.layers, np.asarray(xs, dtype=np.float32)).tolist()

    @app.post("/noop/noop")
    def ready(self) -> str:
        return "ok"


def main() -> None:
    serve_until_stopped(Vectorized.bind(), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
