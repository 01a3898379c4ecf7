"""Multiplexed models inside a replica: `@fs.multiplexed` loaders, their per-replica LRU caches, and
`fs.get_multiplexed_model_id()`.

A decorated loader, called with a model id (or with none: the call's own), returns that model, loading it at most
once per replica however many calls ask for it at the same time, and keeping the `max_num_models_per_replica` most
recently used; beyond that the least recently used is dropped. Dropping is letting go of our reference (in a thread,
before the next model loads): the model's `__del__` runs then, or once the last call still using it lets go. Ray
Serve calls `__del__` itself, even while a call may still be using the model; we never do. Every change of what the
replica holds is reported to the gateway (a MODELS frame: runtime/protocol.py), which routes calls for a model to the
replica that has it (composition/multiplex.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar, overload

from fnserve.errors import SpecError

M = TypeVar("M")

_model_id: contextvars.ContextVar[str] = contextvars.ContextVar("fnserve_multiplexed_model_id", default="")


def get_multiplexed_model_id() -> str:
    """The model id the current call names (its `fnserve-model-id` header, or Ray Serve's
    `serve_multiplexed_model_id`), or "" when it names none. Works in sync endpoints (their thread) and async ones.

    Only a service with an `@fs.multiplexed` loader is passed model ids (the gateway does not look for the header in
    others' calls): elsewhere this is "", and the replica's log says why once.

    Example:
        >>> @svc.endpoint("/predict")
        ... async def predict(text: str) -> dict:
        ...     model = await load_model(fs.get_multiplexed_model_id())
        ...     return {"label": model.predict(text)}
    """
    model_id = _model_id.get()
    if not model_id and not _loaders:
        _warn_no_loader()
    return model_id


@functools.cache
def _warn_no_loader() -> None:
    logging.getLogger("fnserve.multiplexing").warning(
        "fs.get_multiplexed_model_id() is always '' in a service with no @fs.multiplexed loader: the gateway passes "
        "model ids only to services that have one; decorate the function that loads a model with @fs.multiplexed"
    )


def set_model_id(model_id: str) -> contextvars.Token[str]:
    """Make `model_id` the current call's (the worker does, for a call that names one)."""
    return _model_id.set(model_id)


def run_with_model_id(model_id: str, function: Callable[..., M], *args: Any) -> M:
    """`function(*args)` with `model_id` as the call's model id: how a sync endpoint's pool thread gets it."""
    token = _model_id.set(model_id)
    try:
        return function(*args)
    finally:
        _model_id.reset(token)


# -- what the replica reports ------------------------------------------------------------------------------------

_caches: weakref.WeakSet[ModelCache] = weakref.WeakSet()
_notify: Callable[[], None] | None = None  # told of every change of what this process holds
_loaders = 0  # `@fs.multiplexed` loaders made in this process


def loaders_defined() -> int:
    """How many `@fs.multiplexed` loaders this process made (its service's module, or its initializer)."""
    return _loaders


def report_to(notify: Callable[[], None] | None) -> None:
    """Call `notify` now and whenever what this process holds changes, from the thread that changed it; it reads
    `snapshot()` (the worker sends it as a MODELS frame). A snapshot taken when it is sent, rather than one handed
    over at the change, cannot arrive older than one sent before it."""
    global _notify
    _notify = notify
    if notify is not None:
        notify()


def snapshot() -> tuple[list[str], int, int]:
    """The model ids every cache of this process holds or is loading (least recently used first), and the loads and
    evictions they made so far."""
    caches = list(_caches)
    held = [model_id for cache in caches for model_id in cache.model_ids()]
    return held, sum(cache.loads for cache in caches), sum(cache.evictions for cache in caches)


def _report() -> None:
    notify = _notify
    if notify is not None:
        notify()


# -- the cache ---------------------------------------------------------------------------------------------------


class ModelCache:
    """The models one loader has loaded in this replica, least recently used first, at most `max_models`.

    Sync and async loaders share the bookkeeping (under a lock, since sync loaders run in the endpoints' threads);
    a load in progress is shared by every call that asks for the same id meanwhile. A failed load is not kept: the
    next call tries again. Room is made before a load starts, so at most `max_models` models are ever held.
    """

    def __init__(self, load: Callable[[str], Any], max_models: int, name: str) -> None:
        self._load = load
        self.max_models = max_models
        self.name = name
        self._lock = threading.Lock()
        self._models: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._loading: dict[str, Future[Any] | asyncio.Future[Any]] = {}
        self.loads = 0
        self.evictions = 0
        _caches.add(self)

    def model_ids(self) -> list[str]:
        with self._lock:
            return [*self._models, *self._loading]

    def _make_room(self) -> list[Any]:
        """Take least recently used models out until one more fits (under the lock; loads in progress count). The
        caller lets go of them outside the lock, where a model's `__del__` may take its time."""
        dropped = []
        while self._models and len(self._models) + len(self._loading) >= self.max_models:
            dropped.append(self._models.popitem(last=False)[1])
            self.evictions += 1
        return dropped

    def get(self, model_id: str) -> Any:
        """The model, loaded by this thread when no one has it or is loading it (a sync loader)."""
        dropped: list[Any] = []
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            waiting = self._loading.get(model_id)
            if waiting is None:
                dropped = self._make_room()
                pending: Future[Any] = Future()
                self._loading[model_id] = pending
        if waiting is not None:
            assert isinstance(waiting, Future)
            return waiting.result()
        dropped.clear()  # their memory is freed (when nothing else holds them) before the next model loads
        _report()
        try:
            model = self._load(model_id)
        except BaseException as exc:
            self._failed(model_id, pending, exc)
            raise
        self._loaded(model_id, pending, model)
        return model

    async def aget(self, model_id: str) -> Any:
        """The model, loaded on the loop when no one has it or is loading it (an async loader). A caller that is
        cancelled (its client left) does not cancel a load that others may be waiting for."""
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            pending = self._loading.get(model_id)
            if pending is None:
                dropped = self._make_room()
                pending = self._loading[model_id] = asyncio.ensure_future(self._aload(model_id, dropped))
                pending.add_done_callback(_retrieve)
                started = True
            else:
                started = False
        if started:
            _report()
        assert isinstance(pending, asyncio.Future)
        return await asyncio.shield(pending)

    async def _aload(self, model_id: str, dropped: list[Any]) -> Any:
        try:
            if dropped:  # let go of them in a thread, where their `__del__` does not hold up the loop, before loading
                await asyncio.get_running_loop().run_in_executor(None, dropped.clear)
            model = await self._load(model_id)
        except BaseException as exc:
            self._failed(model_id, None, exc)
            raise
        self._loaded(model_id, None, model)
        return model

    def _loaded(self, model_id: str, pending: Future[Any] | None, model: Any) -> None:
        with self._lock:
            del self._loading[model_id]
            dropped = self._make_room()  # only when more loads than room were under way at once
            self._models[model_id] = model
            self.loads += 1
        dropped.clear()
        if pending is not None:
            pending.set_result(model)
        _report()

    def _failed(self, model_id: str, pending: Future[Any] | None, exc: BaseException) -> None:
        with self._lock:
            del self._loading[model_id]
        if pending is not None:
            pending.set_exception(exc)
        _report()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # the callers got it; never "exception was never retrieved"


# -- the decorator -----------------------------------------------------------------------------------------------


class MultiplexedLoader:
    """A loader decorated with `@fs.multiplexed`: call it with a model id (or none, for the call's own) to get the
    model from this replica's cache. On a method, each instance has its own cache."""

    def __init__(self, function: Callable[..., Any], max_models: int) -> None:
        self.function = function
        self.max_models = max_models
        self.is_async = inspect.iscoroutinefunction(function)
        self._cache: ModelCache | None = None
        global _loaders
        _loaders += 1
        functools.update_wrapper(self, function)

    def _cache_for(self, instance: Any = None) -> ModelCache:
        if instance is None:
            if self._cache is None:
                self._cache = ModelCache(self.function, self.max_models, self.function.__qualname__)
            return self._cache
        # Kept on the instance (a class service has one per replica); its bound loader is made once.
        key = f"__fnserve_models_{self.function.__name__}"
        held = getattr(instance, "__dict__", None)
        if held is None:
            raise TypeError(
                f"@fs.multiplexed on a method needs instances with a __dict__; {type(instance).__qualname__} has none"
            )
        cache: ModelCache | None = held.get(key)
        if cache is None:
            load = self.function.__get__(instance, type(instance))
            cache = held[key] = ModelCache(load, self.max_models, self.function.__qualname__)
        return cache

    def __call__(self, model_id: str | None = None) -> Any:
        return _fetch(self._cache_for(), self.is_async, model_id)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return functools.partial(_fetch, self._cache_for(instance), self.is_async)

    def __getstate__(self) -> dict[str, Any]:  # caches (locks, models) stay in the process that made them
        return {"function": self.function, "max_models": self.max_models}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["function"], state["max_models"])  # type: ignore[misc]


def _fetch(cache: ModelCache, is_async: bool, model_id: str | None = None) -> Any:
    if model_id is None:
        model_id = _model_id.get()
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(
            f"{cache.name}() needs a model id: this call named none (send the fnserve-model-id header), and none "
            f"was passed; got {model_id!r}"
        )
    return cache.aget(model_id) if is_async else cache.get(model_id)


@overload
def multiplexed(function: Callable[..., Any], /) -> MultiplexedLoader: ...


@overload
def multiplexed(*, max_num_models_per_replica: int = 3) -> Callable[[Callable[..., Any]], MultiplexedLoader]: ...


def multiplexed(
    function: Callable[..., Any] | None = None, /, *, max_num_models_per_replica: int = 3
) -> MultiplexedLoader | Callable[[Callable[..., Any]], MultiplexedLoader]:
    """Make `load(model_id)` a per-replica model cache, for many models behind one service (Ray Serve's
    `@serve.multiplexed`).

    Calling the decorated loader returns the model for that id: loaded once per replica (calls asking for it while
    it loads wait for that one load), kept while it is among the `max_num_models_per_replica` most recently used,
    then dropped. An async loader is awaited (`await load(model_id)`); a sync one returns the model (use it from
    sync endpoints: it runs in their thread). Called with no id, it loads the call's own
    (`fs.get_multiplexed_model_id()`). Callers name the model with the `fnserve-model-id` header (or
    `serve_multiplexed_model_id`); the gateway sends each call to a replica that holds its model when it can.

    Args:
        max_num_models_per_replica: how many models one replica keeps, at least 1.

    Example:
        >>> @fs.multiplexed(max_num_models_per_replica=3)
        ... async def load_model(model_id: str) -> Model:
        ...     return await Model.from_pretrained(f"models/{model_id}")
        >>> @svc.endpoint("/predict")
        ... async def predict(text: str) -> dict:
        ...     model = await load_model()   # this call's model: its fnserve-model-id header
        ...     return {"label": model.predict(text)}
    """
    limit = max_num_models_per_replica
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SpecError(
            f"max_num_models_per_replica must be a whole number of models, at least 1, got {limit!r}; "
            "e.g. @fs.multiplexed(max_num_models_per_replica=3)"
        )

    def decorate(load: Callable[..., Any]) -> MultiplexedLoader:
        if not callable(load):
            raise SpecError(f"@fs.multiplexed decorates a function load(model_id), got {load!r}")
        if inspect.isasyncgenfunction(load) or inspect.isgeneratorfunction(load):
            raise SpecError(f"@fs.multiplexed: {load.__qualname__}() must return the model, not be a generator")
        return MultiplexedLoader(load, limit)

    return decorate if function is None else decorate(function)
