"""A service's own health check: a class's `check_health` method, or a function service's `@svc.health_check`.

Checked here when the service is declared; run in the replica by `fnserve.runtime.health` each time the
server pings it. What the server does with the answers is `fnserve.controlplane.health`'s business.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fnserve.errors import SpecError
from fnserve.sdk.introspect import CallKind, call_kind

HEALTH_METHOD = "check_health"


@dataclass(frozen=True)
class HealthCheck:
    """The user's check, as the replica runs it: it passes unless it raises or returns False."""

    function: Callable[..., Any]
    call_kind: CallKind
    is_method: bool

    @property
    def name(self) -> str:
        return getattr(self.function, "__qualname__", HEALTH_METHOD)


def build_health_check(function: Any, *, is_method: bool) -> HealthCheck:
    """Raise SpecError unless `function` can be a health check: a plain or async function (no generator), whose
    parameters the replica can fill (for a method, none besides `self` without a default)."""
    if not callable(function):
        raise SpecError(f"a health check must be a function, got {function!r}")
    name = getattr(function, "__qualname__", repr(function))
    kind = call_kind(function)
    if kind.streams:
        raise SpecError(f"health check {name}() is a generator; return (or raise) instead of yielding")
    parameters = list(inspect.signature(function).parameters.values())
    if is_method:
        required = [p.name for p in parameters[1:] if p.default is p.empty and p.kind not in _VARIADIC]
        if required:
            raise SpecError(
                f"{name}() takes {', '.join(required)}; a {HEALTH_METHOD} method is called with `self` only, so "
                "give those parameters defaults or read them from `self`"
            )
    else:
        positional = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]
        if positional:
            raise SpecError(
                f"health check {name}() takes positional-only {', '.join(positional)}; its parameters are filled by "
                "name from the initializer's dict, so drop the `/`"
            )
    return HealthCheck(function=function, call_kind=kind, is_method=is_method)


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
