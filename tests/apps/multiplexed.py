"""Many models behind one service: `@fs.multiplexed` loaders (async and sync) that count their loads per replica,
so a test can see which replica loaded which model, and how often."""

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import fnserve as fs

LOADS: dict[str, int] = {}  # model id → loads in this replica, by either loader


def _wait_for(path: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _model(model_id: str) -> dict[str, object]:
    LOADS[model_id] = LOADS.get(model_id, 0) + 1
    return {"id": model_id, "weights": len(model_id)}


@fs.multiplexed(max_num_models_per_replica=2)
async def load_model(model_id: str) -> dict[str, object]:
    """A model id `gated:<path>` loads once the file at <path> exists (a slow load a test controls)."""
    if model_id.startswith("gated:"):
        await asyncio.to_thread(_wait_for, model_id.removeprefix("gated:"))
    return _model(model_id)


@fs.multiplexed(max_num_models_per_replica=2)
def load_model_sync(model_id: str) -> dict[str, object]:
    return _model(model_id)


@fs.service(name="multiplexed", replicas=2, auth=False)
def multiplexed() -> dict[str, object]:
    return {}


def _answer(model: dict[str, object]) -> dict[str, object]:
    model_id = fs.get_multiplexed_model_id()
    return {"model_id": model_id, "model": model["id"], "pid": os.getpid(), "loads": LOADS.get(model_id, 0)}


@multiplexed.endpoint("/predict")
async def predict() -> dict[str, object]:
    return _answer(await load_model())


@multiplexed.endpoint("/predict_sync")
def predict_sync() -> dict[str, object]:
    """A sync endpoint: it runs in a pool thread, and still sees its call's model id."""
    return _answer(load_model_sync(fs.get_multiplexed_model_id()))


@multiplexed.endpoint("/hold")
async def hold(until: str) -> dict[str, object]:
    """Load the call's model, then stay in flight until the file `until` exists."""
    model = await load_model()
    await asyncio.to_thread(_wait_for, until)
    return _answer(model)


@multiplexed.endpoint("/stream", streaming=True)
def stream(count: int = 2) -> Iterator[str]:
    """A sync generator (a thread of its own) sees the call's model id too."""
    for _ in range(count):
        yield fs.get_multiplexed_model_id() + "\n"


@fs.service(
    name="adapters", autoscaling=fs.Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=60), auth=False
)
class Adapters:
    """Ray Serve's class form, scaled from zero: the first call naming a model starts the replica."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}

    @fs.multiplexed(max_num_models_per_replica=1)
    async def get_model(self, model_id: str) -> str:
        self.loads[model_id] = self.loads.get(model_id, 0) + 1
        return f"adapter {model_id}"

    @fs.endpoint("/generate")
    async def generate(self, prompt: str) -> dict[str, object]:
        model_id = fs.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        return {"model_id": model_id, "model": model, "loads": self.loads[model_id], "prompt": prompt}
