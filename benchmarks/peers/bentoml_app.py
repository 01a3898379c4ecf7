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

import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import bentoml

# benchmarks/scenarios.py's PAYLOAD: the bytes `/noop/download` answers. BentoML answers files, not bytes, so the
# service writes them to a file once and returns its path, as a BentoML service returning an image would.
PAYLOAD = bytes(range(256)) * 4096


@bentoml.service(logging={"access": {"enabled": False}})
class Bench:
    def __init__(self) -> None:
        self.payload_file = Path(tempfile.mkdtemp()) / "payload.bin"
        self.payload_file.write_bytes(PAYLOAD)

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

    @bentoml.api(route="/noop/upload")
    def upload(self, image: Path) -> dict[str, int]:
        return {"bytes": len(image.read_bytes())}

    @bentoml.api(route="/noop/download")
    def download(self, size: int) -> Path:
        assert size == len(PAYLOAD), "the benchmark asks for the whole payload"
        return self.payload_file
