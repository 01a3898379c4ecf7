"""The handle benchmark for Ray Serve: `benchmarks/apps/composition_app.py` written the Ray Serve way.

A `Noop` deployment, and a `Caller` ingress holding a `DeploymentHandle` to it (Ray Serve's model composition),
both at one replica, on a local single-node Ray, Serve's HTTP proxy on `--port`. Runs in Ray's own venv:

    ~/.cache/fnserve-bench/peers/ray/bin/python benchmarks/peers/ray_handles_app.py --port 8123
"""
# mypy: ignore-errors
# (Ray is not installed in the repo's venv.) No `from __future__ import annotations`: FastAPI reads the annotations.

import argparse
import os
import signal
import threading
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
from fastapi import FastAPI
from ray import serve

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ray.init()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(Caller.bind(Noop.bind()), route_prefix="/", logging_config={"enable_access_log": False})
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
