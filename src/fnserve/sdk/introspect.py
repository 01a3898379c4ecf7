"""Reading user functions: how they run (sync, async, generator) and what their parameters are.

Decided once, at decoration time, so the replica never inspects a function per call.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from typing import Any

import orjson

from fnserve.spec import ParameterSpec

# Parameters the platform fills in; callers never send them.
API_PARAMETER = "_api"
RESERVED_PARAMETERS = frozenset({API_PARAMETER})
_DEFAULT_REPR_LIMIT = 500


class CallKind(enum.StrEnum):
    sync = "sync"
    coroutine = "coroutine"
    generator = "generator"
    async_generator = "async_generator"

    @property
    def streams(self) -> bool:
        return self in (CallKind.generator, CallKind.async_generator)


def call_kind(func: Callable[..., Any]) -> CallKind:
    target = inspect.unwrap(func)
    if inspect.isasyncgenfunction(target):
        return CallKind.async_generator
    if inspect.isgeneratorfunction(target):
        return CallKind.generator
    if inspect.iscoroutinefunction(target):
        return CallKind.coroutine
    return CallKind.sync


def type_name(annotation: Any) -> str:
    """A readable name for a type hint: `int`, `list[str]`, `Any` when absent."""
    if annotation is inspect.Parameter.empty:
        return "Any"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def json_default(value: Any) -> Any:
    """A parameter default as JSON shows it: itself when JSON-serializable, else its `str()`, cut to 500."""
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)[:_DEFAULT_REPR_LIMIT]
    return value


def describe_parameters(func: Callable[..., Any], *, skip_first: bool) -> tuple[dict[str, ParameterSpec], bool]:
    """The caller-visible parameters of `func`, and whether it takes `**kwargs`."""
    signature = inspect.signature(func)
    parameters: dict[str, ParameterSpec] = {}
    var_kwargs = False
    for index, parameter in enumerate(signature.parameters.values()):
        if skip_first and index == 0:
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_kwargs = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL or parameter.name in RESERVED_PARAMETERS:
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"{func.__qualname__}() has a positional-only parameter {parameter.name!r}; endpoints receive "
                "arguments by name, so remove the '/'"
            )
        has_default = parameter.default is not inspect.Parameter.empty
        parameters[parameter.name] = ParameterSpec(
            type=type_name(parameter.annotation),
            default=json_default(parameter.default) if has_default else None,
            has_default=has_default,
        )
    return parameters, var_kwargs


def return_type_name(func: Callable[..., Any]) -> str:
    return type_name(inspect.signature(func).return_annotation)


def first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc) if doc else ""
