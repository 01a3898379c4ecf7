"""Running a service's `check_health()` inside its replica, when the server pings it.

`ReplicaHealth` binds the check to the initializer's state once, then runs at most one check at a time: pings
that come while one runs share its result, so a check that hangs holds one thread, not one per ping.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fnserve.sdk.health import HealthCheck
from fnserve.sdk.introspect import CallKind

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class ReplicaHealth:
    """A health check bound to the replica's state. Raises TypeError when the initializer's dict lacks a value
    the check asks for (the replica then fails to start, saying so)."""

    def __init__(self, check: HealthCheck, state: Any) -> None:
        self.name = check.name
        self.is_async = check.call_kind is CallKind.coroutine
        kwargs: dict[str, Any] = {}
        if check.is_method:
            self.function: Callable[..., Any] = check.function.__get__(state)
        else:
            self.function = check.function
            for name, parameter in inspect.signature(check.function).parameters.items():
                if parameter.kind in _VARIADIC:
                    continue
                if isinstance(state, dict) and name in state:
                    kwargs[name] = state[name]
                elif parameter.default is parameter.empty:
                    raise TypeError(
                        f"health check {self.name}() takes {name!r}, which the initializer's dict does not have; "
                        f"return {name!r} from the initializer, or give the parameter a default"
                    )
        self.kwargs = kwargs
        self._pool: ThreadPoolExecutor | None = None  # one thread, made at the first check
        self._running: asyncio.Future[tuple[bool, str | None]] | None = None

    def check(self) -> asyncio.Future[tuple[bool, str | None]]:
        """(passed, why not) of a check started now, or of the one already running."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
            self._running.add_done_callback(self._finished)
        return self._running

    def _finished(self, _: asyncio.Future[tuple[bool, str | None]]) -> None:
        self._running = None

    async def _run(self) -> tuple[bool, str | None]:
        try:
            if self.is_async:
                result = await self.function(**self.kwargs)
            else:
                if self._pool is None:
                    # Its own thread: endpoints busy in every pool thread must not make the replica look unhealthy.
                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fnserve-health")
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._pool, lambda: self.function(**self.kwargs))
        except Exception as exc:
            message = str(exc)
            return False, f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        if result is False:
            return False, f"{self.name}() returned False"
        return True, None
