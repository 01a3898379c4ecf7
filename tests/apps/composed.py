"""A graph of services calling each other through handles: preprocess → model-a, model-b (narrow, sleepy) → relay
→ combine.

`combine` declares the three it uses as service objects, so `fs.deploy(combine)()` deploys all four, leaves first.
`model-a` is sync (its calls run in threads), `model-b` async. A few endpoints exist for one test each: a slow call
(a replica killed under it), a call that waits until cancelled (marker files say what the leaf saw), a call to a
service `combine` does not declare.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fnserve as fs


@fs.service(name="preprocess", auth=False)
def preprocess() -> dict[str, Any]:
    return {}


@preprocess.endpoint("/clean")
def clean(text: str) -> str:
    return text.strip().lower()


@fs.service(name="model-a")
def model_a() -> dict[str, Any]:
    return {}


@model_a.endpoint("/predict")
def predict_a(text: str) -> dict[str, Any]:
    return {"model": "a", "words": len(text.split()), "pid": os.getpid()}


@model_a.endpoint("/tokens", streaming=True)
def tokens_a(text: str) -> Iterator[str]:
    yield from text.split()


@model_a.endpoint("/slow")
def slow_a(seconds: float, marker: str = "") -> str:
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


@model_a.endpoint("/fail")
def fail_a(message: str) -> str:
    raise ValueError(message)


@fs.service(name="model-b")
def model_b() -> dict[str, Any]:
    return {}


@model_b.endpoint("/predict")
async def predict_b(text: str) -> dict[str, Any]:
    return {"model": "b", "chars": len(text)}


@model_b.endpoint("/wait")
async def wait_b(started: str, cancelled: str) -> str:
    """Waits until cancelled; the marker files say it started, and that the cancel reached it."""
    Path(started).write_text("started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        Path(cancelled).write_text("cancelled")
        raise
    return "not cancelled"


@model_b.endpoint("/items/{item_id}", method="GET")
def item_b(item_id: int, scale: int = 1) -> dict[str, int]:
    return {"item_id": item_id, "scaled": item_id * scale}


@fs.service(name="narrow", max_ongoing_requests=1, max_queued_requests=0)
def narrow() -> dict[str, Any]:
    return {}


@narrow.endpoint("/hold")
async def hold(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "held"


@fs.service(name="sleepy", autoscaling=fs.Autoscaling(min_replicas=0, max_replicas=1, upscale_delay_s=0))
def sleepy() -> dict[str, Any]:
    return {}


@sleepy.endpoint("/wake")
def wake() -> int:
    return os.getpid()


@fs.service(name="relay", uses=[model_b])
def relay() -> dict[str, Any]:
    return {"b": fs.handle(model_b)}


@relay.endpoint("/wait")
async def relay_wait(started: str, cancelled: str, b: Any) -> str:
    result: str = await b.wait(started=started, cancelled=cancelled)
    return result


@relay.endpoint("/facts")
def relay_facts() -> dict[str, Any]:
    from fnserve.composition.channel import current_call

    call = current_call.get()
    assert call is not None
    return {"request_id": call.request_id, "remaining_s": call.remaining_s()}


@fs.service(name="combine", uses=[preprocess, model_a, model_b, narrow, sleepy, relay])
def combine() -> dict[str, Any]:
    return {
        "pre": fs.handle("preprocess"),
        "a": fs.handle(model_a),
        "b": fs.handle("model-b"),
        "n": fs.handle(narrow),
        "s": fs.handle(sleepy),
        "r": fs.handle(relay),
    }


@combine.endpoint("/sync")
def run_sync(text: str, pre: Any, a: Any, b: Any) -> dict[str, Any]:
    cleaned = pre.clean(text=text)
    return {"cleaned": cleaned, "a": a.predict(text=cleaned), "b": b.predict(text=cleaned)}


@combine.endpoint("/async")
async def run_async(text: str, pre: Any, a: Any, b: Any) -> dict[str, Any]:
    cleaned = await pre.clean(text=text)
    got_a, got_b = await asyncio.gather(a.predict(text=cleaned), b.predict(text=cleaned))
    return {"cleaned": cleaned, "a": got_a, "b": got_b}


@combine.endpoint("/words", streaming=True)
async def words(text: str, a: Any) -> AsyncIterator[str]:
    async for word in a.tokens(text=text):
        yield word.upper() + "\n"


@combine.endpoint("/words-sync", streaming=True)
def words_sync(text: str, a: Any) -> Iterator[str]:
    for word in a.tokens(text=text):
        yield word + "\n"


@combine.endpoint("/pinned")
async def pinned(text: str, version: int, a: Any) -> dict[str, Any]:
    result: dict[str, Any] = await a.options(version=version).predict(text=text)
    return result


@combine.endpoint("/job")
def job(text: str, a: Any) -> dict[str, Any]:
    submitted = a.predict.submit(text=text)
    return {"id": submitted.id, "output": submitted.result(timeout_s=20)}


@combine.endpoint("/ajob")
async def ajob(text: str, b: Any) -> Any:
    submitted = await b.predict.submit(text=text)
    return await submitted.result(timeout_s=20)


@combine.endpoint("/slow")
def slow(seconds: float, marker: str, a: Any) -> str:
    result: str = a.slow(seconds=seconds, marker=marker)
    return result


@combine.endpoint("/fail")
async def fail(message: str, a: Any) -> str:
    try:
        await a.fail(message=message)
    except fs.errors.FunctionError as exc:
        return f"caught {exc.code}: {exc.message}"
    return "no error"


@combine.endpoint("/chain")
async def chain(started: str, cancelled: str, b: Any) -> str:
    result: str = await b.wait(started=started, cancelled=cancelled)
    return result


@combine.endpoint("/chain-sync")
def chain_sync(started: str, cancelled: str, b: Any) -> str:
    result: str = b.wait(started=started, cancelled=cancelled)
    return result


@combine.endpoint("/undeclared")
def undeclared() -> Any:
    return fs.handle("secret-service").read()


@combine.endpoint("/item")
async def item(item_id: int, b: Any) -> Any:
    return await b.items(item_id=item_id, scale=10)


@combine.endpoint("/call-facts")
def call_facts() -> dict[str, Any]:
    """What this replica knows of the call it serves: the request id and deadline its handle calls carry on."""
    from fnserve.composition.channel import current_call

    call = current_call.get()
    assert call is not None
    return {"request_id": call.request_id, "remaining_s": call.remaining_s()}


@combine.endpoint("/two-at-once")
async def two_at_once(n: Any) -> list[str]:
    """Two calls at once to a service that takes one call at a time and queues none: the second is refused."""
    outcomes = await asyncio.gather(n.hold(seconds=1.0), n.hold(seconds=1.0), return_exceptions=True)
    return [o if isinstance(o, str) else getattr(o, "code", repr(o)) for o in outcomes]


@combine.endpoint("/wake")
def wake_sleepy(s: Any) -> int:
    pid: int = s.wake()
    return pid


@combine.endpoint("/fanout")
async def fanout(n: int, b: Any) -> bool:
    """n calls at once over the one connection: each gets its own answer."""
    texts = ["x" * i for i in range(n)]
    answers = await asyncio.gather(*(b.predict(text=text) for text in texts))
    return all(answer["chars"] == i for i, answer in enumerate(answers))


@combine.endpoint("/fanout-threads")
def fanout_threads(n: int, a: Any) -> bool:
    """The same from n threads of a sync endpoint (the channel is shared by every thread of the replica)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: a.predict(text=" ".join(["w"] * i)), range(1, n + 1)))
    return all(answer["words"] == i for i, answer in enumerate(answers, start=1))


@combine.endpoint("/chain-deep")
async def chain_deep(started: str, cancelled: str, r: Any) -> str:
    result: str = await r.wait(started=started, cancelled=cancelled)
    return result


@combine.endpoint("/relay-facts")
async def relay_facts_through(r: Any) -> Any:
    return await r.facts()
