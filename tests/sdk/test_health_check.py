"""Declaring a service's health check (`check_health` method, `@svc.health_check`), and running it as a replica
does: bound to the initializer's state, passing unless it raises or returns False."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fnserve as fs
from fnserve.errors import SpecError
from fnserve.runtime.health import ReplicaHealth
from fnserve.sdk.introspect import CallKind


def test_function_service_health_check_takes_state_by_name_and_stays_a_plain_function() -> None:
    @fs.service
    def model(path: str = "weights.bin") -> dict[str, Any]:
        return {"path": path, "loaded": True}

    def loaded(loaded: bool, path: str, extra: int = 1) -> bool:
        return loaded and bool(path) and extra == 1

    assert model.health_check(loaded) is loaded
    assert model.health is not None
    assert (model.health.function, model.health.call_kind, model.health.is_method) == (loaded, CallKind.sync, False)
    assert loaded(True, "x")


def test_class_service_check_health_method_needs_no_decorator() -> None:
    class Model:
        def __init__(self) -> None:
            self.ready = True

        async def check_health(self) -> bool:
            return self.ready

        def __call__(self, request: fs.Request) -> None: ...

    service = fs.service(Model)  # mypy ignores class decorators' return types, so call it
    assert service.health is not None
    assert (service.health.call_kind, service.health.is_method) == (CallKind.coroutine, True)
    assert fs.service(type("Plain", (), {"__call__": lambda self: None})).health is None


def test_health_check_declarations_are_checked_at_decoration() -> None:
    @fs.service
    def svc() -> dict[str, Any]:
        return {}

    @svc.health_check
    def first() -> None: ...

    with pytest.raises(SpecError, match=r"already has a health check, .*first\(\); keep one"):
        svc.health_check(lambda: None)

    @fs.service
    def other() -> dict[str, Any]:
        return {}

    def generator() -> Any:
        yield True

    with pytest.raises(SpecError, match="is a generator; return"):
        other.health_check(generator)
    with pytest.raises(SpecError, match="positional-only x"):
        other.health_check(lambda x, /: True)

    class Needs:
        def check_health(self, depth: int) -> bool:
            return depth > 0

    with pytest.raises(SpecError, match="takes depth; a check_health method is called with `self` only"):
        fs.service(Needs)

    class Counter:
        def __call__(self) -> int:
            return 0

    with pytest.raises(SpecError, match=r"define a `check_health\(self\)` method instead"):
        fs.service(Counter).health_check(lambda: True)


@pytest.mark.anyio
async def test_replica_health_passes_fails_and_reports_why() -> None:
    @fs.service
    def svc() -> dict[str, Any]:
        return {}

    state = {"ok": True}

    @svc.health_check
    def check(ok: bool) -> bool:
        if ok is None:
            raise RuntimeError("disk full")
        return ok

    assert svc.health is not None
    assert await ReplicaHealth(svc.health, state).check() == (True, None)
    assert await ReplicaHealth(svc.health, {"ok": False}).check() == (
        False,
        "test_replica_health_passes_fails_and_reports_why.<locals>.check() returned False",
    )
    assert await ReplicaHealth(svc.health, {"ok": None}).check() == (False, "RuntimeError: disk full")
    with pytest.raises(TypeError, match="takes 'ok', which the initializer's dict does not have"):
        ReplicaHealth(svc.health, {})


@pytest.mark.anyio
async def test_replica_health_shares_one_running_check_between_pings() -> None:
    release = asyncio.Event()
    runs: list[int] = []

    class Slow:
        async def check_health(self) -> None:
            runs.append(1)
            await release.wait()

        def __call__(self) -> None: ...

    service = fs.service(Slow)
    assert service.health is not None
    health = ReplicaHealth(service.health, Slow())
    first, second = health.check(), health.check()
    assert first is second
    release.set()
    assert await first == (True, None)
    assert runs == [1]
    assert await health.check() == (True, None)
    assert runs == [1, 1]
