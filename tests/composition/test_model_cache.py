"""`@fs.multiplexed` loaders in one process: one load per model however many ask at once, least recently used models
dropped, sync and async loaders, methods with a cache per instance, and what is reported to the gateway."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle
import pytest

import fnserve as fs
from fnserve.composition import model_cache
from fnserve.errors import SpecError


def test_an_async_loader_loads_each_model_once_and_drops_the_least_recently_used() -> None:
    loads: list[str] = []

    @fs.multiplexed(max_num_models_per_replica=2)
    async def load(model_id: str) -> str:
        loads.append(model_id)
        return f"model {model_id}"

    async def scenario() -> None:
        assert await load("a") == "model a"
        assert await load("b") == "model b"
        assert await load("a") == "model a"  # a is now the most recently used
        assert await load("c") == "model c"  # b is dropped
        assert await load("a") == "model a"
        assert await load("b") == "model b"  # loaded again; c is dropped

    asyncio.run(scenario())
    assert loads == ["a", "b", "c", "b"]


def test_concurrent_calls_for_one_model_share_its_load() -> None:
    started = 0

    @fs.multiplexed(max_num_models_per_replica=3)
    async def load(model_id: str) -> str:
        nonlocal started
        started += 1
        await asyncio.sleep(0.05)
        return model_id

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(load("a") for _ in range(5))))

    assert asyncio.run(scenario()) == ["a"] * 5
    assert started == 1


def test_a_cancelled_caller_does_not_cancel_a_load_others_wait_for() -> None:
    gate: asyncio.Event

    @fs.multiplexed
    async def load(model_id: str) -> str:
        await gate.wait()
        return model_id

    async def scenario() -> str:
        nonlocal gate
        gate = asyncio.Event()
        first = asyncio.ensure_future(load("a"))
        second = asyncio.ensure_future(load("a"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        gate.set()
        async with asyncio.timeout(2):
            return str(await second)

    assert asyncio.run(scenario()) == "a"


def test_a_failed_load_is_not_kept_and_is_tried_again() -> None:
    attempts = 0

    @fs.multiplexed(max_num_models_per_replica=1)
    def load(model_id: str) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("weights not found")
        return model_id

    with pytest.raises(OSError, match="weights not found"):
        load("a")
    assert load("a") == "a"
    assert attempts == 2


def test_a_sync_loader_shares_one_load_between_threads() -> None:
    started = 0
    release = threading.Event()

    @fs.multiplexed(max_num_models_per_replica=2)
    def load(model_id: str) -> str:
        nonlocal started
        started += 1
        assert release.wait(5)
        return model_id.upper()

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load, "a") for _ in range(4)]
        release.set()
        assert [future.result(timeout=5) for future in futures] == ["A"] * 4
    assert started == 1


def test_called_with_no_id_it_loads_the_calls_own() -> None:
    @fs.multiplexed
    def load(model_id: str) -> str:
        return f"model {model_id}"

    assert model_cache.run_with_model_id("m7", lambda: (fs.get_multiplexed_model_id(), load())) == ("m7", "model m7")
    assert fs.get_multiplexed_model_id() == ""
    with pytest.raises(ValueError, match="needs a model id"):
        load()


def test_a_method_loader_keeps_a_cache_per_instance() -> None:
    class Service:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix
            self.loads = 0

        @fs.multiplexed(max_num_models_per_replica=1)
        async def get_model(self, model_id: str) -> str:
            self.loads += 1
            return f"{self.prefix}{model_id}"

    first, second = Service("1:"), Service("2:")

    async def scenario() -> list[Any]:
        return [await first.get_model("a"), await first.get_model("a"), await second.get_model("a")]

    assert asyncio.run(scenario()) == ["1:a", "1:a", "2:a"]
    assert (first.loads, second.loads) == (1, 1)


def test_every_change_of_what_is_held_is_reported_and_hits_are_not() -> None:
    reports: list[tuple[list[str], int, int]] = []

    @fs.multiplexed(max_num_models_per_replica=1)
    def load(model_id: str) -> str:
        return model_id

    model_cache.report_to(lambda: reports.append(model_cache.snapshot()))
    del reports[:]  # the state when reporting starts, sent at once
    try:
        load("only-here-a")
        load("only-here-a")  # a hit changes nothing: nothing is sent
        load("only-here-b")
    finally:
        model_cache.report_to(None)
    # Each report holds every cache of this process (earlier tests' too): only this loader's ids are looked at.
    mine = [[model_id for model_id in held if model_id.startswith("only-here")] for held, _, _ in reports]
    # Loading a, loaded a, (a hit: nothing), a dropped and b loading, loaded b.
    assert mine == [["only-here-a"], ["only-here-a"], ["only-here-b"], ["only-here-b"]]
    assert reports[-1][2] - reports[0][2] == 1  # one eviction
    assert "only-here-a" not in model_cache.snapshot()[0]


def test_a_dropped_model_is_let_go_off_the_loop_before_the_next_one_loads() -> None:
    """Its `__del__` runs in a thread (it may free GPU memory slowly), and before the next model loads."""
    events: list[tuple[str, ...]] = []

    class Model:
        def __init__(self, name: str) -> None:
            self.name = name

        def __del__(self) -> None:
            on_loop = threading.current_thread() is threading.main_thread()
            events.append(("del", self.name, "on the loop" if on_loop else "in a thread"))

    @fs.multiplexed(max_num_models_per_replica=1)
    async def load(model_id: str) -> Model:
        events.append(("load", model_id))
        return Model(model_id)

    async def scenario() -> None:
        await load("a")  # nothing keeps it but the cache
        await load("b")

    asyncio.run(scenario())
    assert events[:3] == [("load", "a"), ("del", "a", "in a thread"), ("load", "b")]


def test_a_decorated_loader_pickles_without_its_models() -> None:
    @fs.multiplexed(max_num_models_per_replica=2)
    def load(model_id: str) -> str:
        return model_id

    load("a")
    copy = cloudpickle.loads(cloudpickle.dumps(load))
    assert copy.max_models == 2
    assert copy("b") == "b"


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "3"])
def test_a_bad_limit_is_refused(limit: Any) -> None:
    with pytest.raises(SpecError, match="max_num_models_per_replica must be"):
        fs.multiplexed(max_num_models_per_replica=limit)
