"""`@fs.batch`: mark an endpoint whose function takes lists so that its replica runs concurrent calls as one call.

This module is the decoration-time half: the options (the spec's defaults, changed live in a replica by
`set_max_batch_size`), and the one-item view of the function that the endpoint's spec, validation and docs are
built from. The replica-side queue that gathers calls is `composition/batching.py`.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar, overload

from fnserve.errors import SpecError
from fnserve.spec import BatchSpec

F = TypeVar("F", bound=Callable[..., Any])

_BATCH_MARK = "__fnserve_batch__"
# Annotations that make a parameter batched: each caller sends one element, the function gets the list.
_LISTS = (list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable)
# A streaming function's return annotation: the element type of what it yields is a list too.
_GENERATORS = (
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


class BatchOptions:
    """One batched function's live options: built from `@fs.batch(...)`, read by the replica's batcher before each
    batch, so `set_max_batch_size` applies to the next batch."""

    __slots__ = ("max_batch_size", "batch_wait_timeout_s")

    def __init__(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        self.max_batch_size = _checked_size(max_batch_size)
        self.batch_wait_timeout_s = _checked_timeout(batch_wait_timeout_s)

    def set_max_batch_size(self, max_batch_size: int) -> None:
        self.max_batch_size = _checked_size(max_batch_size)

    def set_batch_wait_timeout_s(self, batch_wait_timeout_s: float) -> None:
        self.batch_wait_timeout_s = _checked_timeout(batch_wait_timeout_s)

    @property
    def spec(self) -> BatchSpec:
        return BatchSpec(max_batch_size=self.max_batch_size, batch_wait_timeout_s=self.batch_wait_timeout_s)


def _checked_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise SpecError(f"max_batch_size must be an int from 1 to 10000, got {value!r}")
    return value


def _checked_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
        raise SpecError(
            f"batch_wait_timeout_s must be seconds from 0 to 60, got {value!r}; 0 runs what has arrived at once"
        )
    return float(value)


@overload
def batch(function: F, /) -> F: ...


@overload
def batch(*, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.01) -> Callable[[F], F]: ...


def batch(
    function: F | None = None, /, *, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.01
) -> F | Callable[[F], F]:
    """Run concurrent calls of an endpoint as one call of its function, which takes lists and returns a list.

    Callers call the endpoint with one item's arguments, as if it were not batched: its OpenAPI document, its
    validation and the Python client show one item. The replica gathers calls that arrive together (up to
    `max_batch_size`, waiting at most `batch_wait_timeout_s` after the first), calls the function once with a list
    per parameter (in the callers' order), and hands each caller its own element of the returned list.

    - Parameters annotated `list[X]` (or unannotated) are batched: a caller sends one `X`. A parameter with any
      other annotation is shared: filled from the initializer's dict or its default, passed once, never sent.
      A batched parameter's default is each item's default.
    - Per caller errors: arguments that fail validation get their caller a 422 and stay out of the batch; an
      `Exception` instance in the returned list fails that caller alone (`function_error`); an exception raised by
      the function fails every caller of that batch; a list of the wrong length fails them all, naming both lengths.
    - A generator (`streaming=True`) yields a list per step, one element per caller; a caller's stream ends when its
      element is `StopIteration` (as in Ray Serve) or the generator ends.
    - Live tuning, inside the replica: `fn.set_max_batch_size(n)`, `fn.set_batch_wait_timeout_s(s)` (on a class,
      `self.method.set_max_batch_size(n)`); the values given here are each replica's starting values.
    - A service with batched endpoints lets `2 × max_batch_size` calls into each replica by default, so one batch
      fills while the previous one runs; an explicit `max_ongoing_requests` below `max_batch_size` is warned about.

    It stacks with `@svc.endpoint(...)` / `@fs.endpoint(...)` in either order; the function itself stays a plain
    callable that takes lists.

    Args:
        max_batch_size: the most calls in one batch (1 to 10000).
        batch_wait_timeout_s: how long the first call of a batch waits for more (0 to 60 s; 0: no wait).

    Example:
        >>> import fnserve as fs
        >>> @fs.service
        ... class Embedder:
        ...     @fs.endpoint("/embed")
        ...     @fs.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
        ...     def embed(self, texts: list[str]) -> list[int]:
        ...         return [len(text) for text in texts]
    """
    options = BatchOptions(max_batch_size, batch_wait_timeout_s)

    def mark(target: F) -> F:
        if not callable(target):
            raise SpecError(f"@fs.batch decorates a function or a method, got {target!r}")
        if batch_options(target) is not None:
            raise SpecError(f"{target.__qualname__}() is already batched; use one @fs.batch(...)")
        setattr(target, _BATCH_MARK, options)
        target.set_max_batch_size = options.set_max_batch_size  # type: ignore[attr-defined]
        target.set_batch_wait_timeout_s = options.set_batch_wait_timeout_s  # type: ignore[attr-defined]
        return target

    return mark if function is None else mark(function)


def batch_options(function: Callable[..., Any]) -> BatchOptions | None:
    """The options of a function marked with `@fs.batch`, or None."""
    options = getattr(function, _BATCH_MARK, None)
    return options if isinstance(options, BatchOptions) else None


def item_view(function: Callable[..., Any], *, is_method: bool) -> tuple[Callable[..., Any], frozenset[str]]:
    """A stand-in for a batched function with one item's signature, and the names of its shared parameters.

    The stand-in has the function's name and docstring; each batched parameter is annotated with its element type
    (`list[str]` → `str`), shared parameters are left out (callers never send them), and the return annotation is the
    element type too. It is only inspected (spec, validation model, docs), never called.
    """
    name = getattr(function, "__qualname__", repr(function))
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # a name that does not resolve here: those parameters take any value
        hints = {}
    parameters = []
    annotations: dict[str, Any] = {}
    shared: set[str] = set()
    for index, parameter in enumerate(signature.parameters.values()):
        if is_method and index == 0:
            parameters.append(parameter)
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            raise SpecError(
                f"batched endpoint {name}() takes **{parameter.name}; name its parameters, so that each becomes a list"
            )
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty or parameter.name.startswith("_"):
            parameters.append(parameter)
            continue
        hint = hints.get(parameter.name, Any)
        element = _element(hint)
        if element is None and hint is not Any:
            shared.add(parameter.name)
            if is_method and parameter.default is inspect.Parameter.empty:
                raise SpecError(
                    f"batched endpoint {name}() has a parameter {parameter.name!r} that is not a list and has no "
                    f"default; annotate it list[...] to batch it (each caller sends one element), or give it a default"
                )
            continue
        annotations[parameter.name] = Any if element is None else element
        parameters.append(parameter.replace(annotation=annotations[parameter.name]))
    returns = _element(hints.get("return", Any))
    if returns is None:
        returns = _yielded(hints.get("return", Any))
    if returns is not None:
        annotations["return"] = returns

    def view(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a batched function's one-item view is never called")

    view.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=annotations.get("return", inspect.Signature.empty)
    )
    view.__annotations__ = annotations
    view.__name__ = getattr(function, "__name__", name)
    view.__qualname__ = name
    view.__doc__ = function.__doc__
    view.__module__ = getattr(function, "__module__", __name__)
    view.__wrapped__ = function  # type: ignore[attr-defined]  # how it runs (call_kind) is the function's
    return view, frozenset(shared)


def _element(hint: Any) -> Any:
    """`X` for `list[X]` (or a Sequence of X), `Any` for a bare `list`, None for anything else."""
    if hint is list:
        return Any
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _element(typing.get_args(hint)[0])
    if origin in _LISTS:
        args = typing.get_args(hint)
        return args[0] if args else Any
    return None


def _yielded(hint: Any) -> Any:
    """For a generator annotated `Iterator[list[X]]`, `Iterator[X]`: what one caller's stream carries."""
    origin = typing.get_origin(hint)
    if origin not in _GENERATORS:
        return None
    args = typing.get_args(hint)
    element = _element(args[0]) if args else None
    if element is None:
        return None
    iterator: Any = collections.abc.AsyncIterator if "Async" in origin.__name__ else collections.abc.Iterator
    return iterator[element]
