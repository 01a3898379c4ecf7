"""The benchmark app for BentoML: the routes of `benchmarks/apps/noop.py`, written the BentoML way.

One `@bentoml.service` class with an `@bentoml.api` per route, each given its exact path with `route=`. Served
by `bentoml serve bentoml_app:Bench` (production mode, BentoML's default since 1.2) with the default single
worker and the access log turned off. Parameters are typed, so BentoML validates them as fnserve does. A `str`
return is BentoML's text/plain, so `/noop/noop` answers `ok` where the others answer the JSON string `"ok"`.
Runs in BentoML's own venv (`benchmarks/peer_envs.py`):

    ~/.cache/fnserve-bench/peers/bentoml/bin/bentoml serve bentoml_app:Bench --working-dir benchmarks/peers --port 8123
"""
# mypy: ignore-errors
# (BentoML is not installed in the repo's venv, so its types are unknown to mypy there.)

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import bentoml


@bentoml.service(logging={"access": {"enabled": False}})
class Bench:
    @bentoml.api(route="/noop/noop")
    def noop(self) -> str:
        return "ok"

    @bentoml.api(route="/noop/echo")
    def echo(self, name: str, tags: list[str], values: list[int], meta: dict[str, str]) -> dict[str, Any]:
        return {"name": name, "tags": tags, "values": values, "meta": meta}

    @bentoml.api(route="/noop/stream")
    def stream(self, chunks: int = 100) -> Generator[str, None, None]:
        for i in range(chunks):
            yield f"token {i:04d}\n"
