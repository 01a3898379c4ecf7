"""The handle benchmark for Ray Serve: `benchmarks/apps/composition_app.py` written the Ray Serve way.

A `Noop` deployment, and a `Caller` ingress holding a `DeploymentHandle` to it (Ray Serve's model composition),
both at one replica, on a local single-node Ray, Serve's HTTP proxy on `--port`. Runs in Ray's own venv:

    ~/.cache/fnserve-bench/peers/ray/bin/python benchmarks/peers/ray_handles_app.py --port 8123
"""
# mypy: ignore-errors
# (Ray is not installed in the repo's venv.) No `from __future__ import annotations`: FastAPI reads the annotations.

import os
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from fastapi import FastAPI
from ray import serve
from ray_runner import serve_until_stopped

app = FastAPI()


@serve.deployment
class Noop:
    async def noop(self) -> str:
        return "ok"


@serve.deployment
@serve.ingress(app)
class Caller:
    def __init__(self, target) -> None:
        self.target = target

    @app.post("/local")
    async def local(self) -> str:
        return "ok"

    @app.post("/via")
    async def via(self) -> str:
        return await self.target.noop.remote()

    @app.post("/loop")
    async def loop(self, n: int) -> list[float]:
        latencies = []
        for _ in range(n):
            started = time.perf_counter()
            await self.target.noop.remote()
            latencies.append((time.perf_counter() - started) * 1e6)
        return latencies


def main() -> None:
    serve_until_stopped(Caller.bind(Noop.bind()), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
