"""The replica side of dynamic batching: calls of one `@fs.batch` endpoint that arrive together run as one call.

A `Batcher` per batched endpoint keeps the calls waiting, in arrival order. A batch starts when `max_batch_size`
calls wait or `batch_wait_timeout_s` has passed since the first one arrived, whichever is first (batch_window.py;
both are read live, so `set_max_batch_size` applies to the next batch). One batch runs at a time, in a pool thread
for a sync function or on the loop for a coroutine, while the next one gathers; streaming batches each run on their
own, so a long stream does not hold back the callers after it. What a batch did (its size, how long its first call
waited) goes to `report`, which the worker sends to the server for `/metrics`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fnserve.composition.batch import BatchOptions
from fnserve.composition.batch_window import wait_before_batch
from fnserve.errors import FnserveError, FunctionError
from fnserve.runtime.invoke import function_error
from fnserve.sdk.introspect import CallKind

_END = object()  # a caller's stream ended
_EXHAUSTED = object()  # a sync generator ended (StopIteration cannot cross a future)


class _Waiting:
    """One caller's call: its arguments, and where its answer goes (a future, or a stream's queue)."""

    __slots__ = ("kwargs", "future", "chunks", "arrived_at", "gone")

    def __init__(self, kwargs: dict[str, Any], arrived_at: float, *, streaming: bool) -> None:
        self.kwargs = kwargs
        self.arrived_at = arrived_at
        self.future: asyncio.Future[Any] | None = None if streaming else asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[Any] | None = asyncio.Queue() if streaming else None
        self.gone = False  # a stream's caller went away

    @property
    def waiting(self) -> bool:
        return not self.gone if self.future is None else not self.future.done()

    def succeed(self, value: Any) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(value)

    def fail(self, error: FnserveError) -> None:
        if self.future is not None:
            if not self.future.done():
                self.future.set_exception(error)
        else:
            assert self.chunks is not None
            self.chunks.put_nowait(error)


class Batcher:
    """Gathers one endpoint's calls into batches and runs its function once per batch."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: BatchOptions,
        *,
        kind: CallKind,
        pool: ThreadPoolExecutor | None,
        shared: dict[str, Any],
        passed_once: frozenset[str],
        name: str,
    ) -> None:
        self.function = function
        self.options = options
        self.kind = kind
        self.pool = pool
        self.shared = shared  # parameters that are no list: the initializer's values or defaults
        self.passed_once = passed_once  # arguments the same for every call (`_api`): the first call's
        self.name = name
        self.report: Callable[[int, float], None] | None = None
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[None]] = set()

    async def call(self, kwargs: dict[str, Any]) -> Any:
        """One caller's result: its element of the batch's result. Raises FnserveError for its own failure."""
        waiting = self._enqueue(kwargs, streaming=False)
        assert waiting.future is not None
        return await waiting.future

    async def stream(self, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """One caller's chunks: its element of each list the batch's generator yields."""
        waiting = self._enqueue(kwargs, streaming=True)
        assert waiting.chunks is not None
        try:
            while True:
                chunk = await waiting.chunks.get()
                if chunk is _END:
                    return
                if isinstance(chunk, FnserveError):
                    raise chunk
                yield chunk
        finally:
            waiting.gone = True

    def _enqueue(self, kwargs: dict[str, Any], *, streaming: bool) -> _Waiting:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(kwargs, loop.time(), streaming=streaming)
        self._waiting.append(waiting)
        self._arrived.set()
        if self._task is None:
            self._task = loop.create_task(self._gather())
        return waiting

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            first_at = self._waiting[0].arrived_at
            while True:
                remaining = wait_before_batch(
                    len(self._waiting),
                    first_arrived_at=first_at,
                    now=loop.time(),
                    max_batch_size=self.options.max_batch_size,
                    batch_wait_timeout_s=self.options.batch_wait_timeout_s,
                )
                if remaining == 0.0:
                    break
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch: list[_Waiting] = []
            while self._waiting and len(batch) < self.options.max_batch_size:
                waiting = self._waiting.popleft()
                if waiting.waiting:  # a caller that went away before its batch started is left out
                    batch.append(waiting)
            if not batch:
                continue
            try:
                if self.report is not None:
                    self.report(len(batch), loop.time() - first_at)
                if self.kind.streams:
                    task = loop.create_task(self._run_stream(batch))
                    self._streams.add(task)
                    task.add_done_callback(self._streams.discard)
                else:
                    await self._run(batch)
            except Exception as exc:  # a bug of ours: the callers get an internal error, the batcher goes on
                print(f"Batcher of {self.name}() failed: {exc!r}", file=sys.stderr)
                traceback.print_exc()
                for waiting in batch:
                    waiting.fail(FunctionError(f"the batch of {self.name}() failed: {exc!r}"))

    def _arguments(self, batch: list[_Waiting]) -> dict[str, Any]:
        first = batch[0].kwargs
        arguments = dict(self.shared)
        for name, value in first.items():
            arguments[name] = value if name in self.passed_once else [waiting.kwargs[name] for waiting in batch]
        return arguments

    async def _run(self, batch: list[_Waiting]) -> None:
        arguments = self._arguments(batch)
        try:
            if self.kind is CallKind.coroutine:
                results = await self.function(**arguments)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self.pool, functools.partial(self.function, **arguments))
        except Exception as exc:
            for waiting in batch:
                waiting.fail(function_error(exc))
            return
        try:
            results = self._one_per_call(results, len(batch), "returned")
        except FunctionError as exc:
            for waiting in batch:
                waiting.fail(exc)
            return
        for waiting, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                waiting.fail(function_error(result))
            else:
                waiting.succeed(result)

    def _one_per_call(self, results: Any, size: int, verb: str) -> list[Any]:
        if isinstance(results, str | bytes | dict) or not hasattr(results, "__len__"):
            raise FunctionError(
                f"batched function {self.name}() {verb} {type(results).__name__}, not a list; return a list with "
                f"one result per call ({size} in this batch), in the order of its arguments"
            )
        if len(results) != size:
            raise FunctionError(
                f"batched function {self.name}() {verb} {len(results)} results for a batch of {size} calls; return "
                "one result per call, in the order of its arguments"
            )
        return list(results)

    async def _run_stream(self, batch: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        streaming = list(batch)  # those whose stream goes on
        try:
            generator = self.function(**self._arguments(batch))
        except Exception as exc:  # arguments the function does not take
            for waiting in batch:
                waiting.fail(function_error(exc))
            return
        try:
            while streaming:
                try:
                    if self.kind is CallKind.async_generator:
                        step = await generator.__anext__()
                    else:
                        step = await loop.run_in_executor(self.pool, _next, generator)
                        if step is _EXHAUSTED:
                            return
                    step = self._one_per_call(step, len(batch), "yielded")
                except StopAsyncIteration:
                    return
                except FunctionError as exc:
                    for waiting in streaming:
                        waiting.fail(exc)
                    streaming = []
                    return
                except Exception as exc:
                    for waiting in streaming:
                        waiting.fail(function_error(exc))
                    streaming = []
                    return
                for waiting, value in zip(batch, step, strict=True):
                    if waiting not in streaming:
                        continue
                    if value is StopIteration or isinstance(value, StopIteration):
                        waiting.chunks.put_nowait(_END)  # type: ignore[union-attr]
                        streaming.remove(waiting)
                    elif isinstance(value, BaseException):
                        waiting.fail(function_error(value))
                        streaming.remove(waiting)
                    else:
                        waiting.chunks.put_nowait(value)  # type: ignore[union-attr]
                if all(waiting.gone for waiting in streaming):
                    return  # every caller left: stop the generator
        finally:
            for waiting in streaming:
                waiting.chunks.put_nowait(_END)  # type: ignore[union-attr]
            if self.kind is CallKind.async_generator:
                await generator.aclose()
            else:
                await loop.run_in_executor(self.pool, generator.close)


def _next(generator: Any) -> Any:
    try:
        return next(generator)
    except StopIteration:
        return _EXHAUSTED
