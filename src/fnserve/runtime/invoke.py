"""Calling one endpoint inside a replica: arguments in (injected, validated, coerced), JSON out.

`BoundEndpoint` is built once per endpoint after the initializer ran; per call it only validates
the arguments and runs the function the way its kind requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from fnserve.errors import FunctionError, InvalidRequest, ValidationFailed
from fnserve.sdk.context import ASSETS_PARAMETER, JOB_PARAMETER, JobContext
from fnserve.sdk.introspect import API_PARAMETER, CallKind, arguments_model
from fnserve.sdk.service import Endpoint

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_END = object()


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serializable: {value!r:.200}")


def to_json(value: Any, *, what: str) -> bytes:
    """Encode a user value, or raise FunctionError naming `what` and the offending type."""
    try:
        return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
    except TypeError as exc:
        if "64-bit" in str(exc):  # JSON has no integer limit, orjson does: Python's json writes big ones
            with contextlib.suppress(TypeError, ValueError):
                return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()
        raise FunctionError(
            f"TypeError: {what} is not JSON-serializable ({exc}); return dicts, lists, strings, numbers, "
            "pydantic models or dataclasses"
        ) from None


def encode_chunk(chunk: Any, *, what: str) -> bytes:
    """A streamed chunk as bytes: text as UTF-8, bytes as they are, anything else as a JSON line."""
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    return to_json(chunk, what=what) + b"\n"


def function_error(exc: BaseException) -> FunctionError:
    """The user's exception as the caller sees it: type and message, never a traceback."""
    message = str(exc)
    return FunctionError(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


class BoundEndpoint:
    """An endpoint bound to a replica's state, ready to be called many times."""

    def __init__(self, endpoint: Endpoint, state: Any, api: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.spec = endpoint.spec
        self.kind = endpoint.call_kind
        # Sync, non-streaming endpoints skip the task: their call goes straight to the thread pool.
        self.runs_in_thread = self.kind is CallKind.sync
        self.function: Callable[..., Any] = (
            endpoint.function.__get__(state) if endpoint.is_method else endpoint.function
        )
        injected = state if isinstance(state, dict) and not endpoint.is_method else {}
        self._model, self._names = arguments_model(endpoint.function, self.spec, injected)
        self._extra: dict[str, Any] = {API_PARAMETER: api} if _takes(endpoint.function, API_PARAMETER) else {}
        self._takes_job = _takes(endpoint.function, JOB_PARAMETER)
        self._takes_assets = _takes(endpoint.function, ASSETS_PARAMETER)

    def arguments(
        self, body: bytes, path: dict[str, str], query: dict[str, Any], context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Merge query < body < path parameters, then validate and coerce them from the type hints; add the
        reserved parameters the function takes."""
        values: dict[str, Any] = dict(query) if query else {}
        if body:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"request body is not valid JSON ({exc}); send a JSON object") from None
            if not isinstance(parsed, dict):
                raise InvalidRequest(
                    f"request body must be a JSON object of arguments, got {type(parsed).__name__}; "
                    'for example {"x": 1}'
                )
            values.update(parsed)
        if path:
            values.update(path)
        try:
            model = self._model.model_validate(values)
        except ValidationError as exc:
            raise ValidationFailed.for_arguments(self.spec.key, exc.errors()) from None
        kwargs = {name: getattr(model, field_name) for field_name, name in self._names}
        if model.__pydantic_extra__:
            kwargs.update(model.__pydantic_extra__)
        if self._extra:
            kwargs.update(self._extra)
        if self._takes_job:
            job_id = context.get("job_id") if context else None
            kwargs[JOB_PARAMETER] = (
                None if job_id is None else JobContext(job_id, context["attempt"], context["max_attempts"])  # type: ignore[index]
            )
        if self._takes_assets:
            files = context.get("assets") if context else None
            kwargs[ASSETS_PARAMETER] = {asset_id: Path(path) for asset_id, path in (files or {}).items()}
        return kwargs

    def call_in_thread(self, kwargs: dict[str, Any]) -> bytes:
        """Run a sync endpoint and encode its result, both in the calling (pool) thread."""
        try:
            result = self.function(**kwargs)
        except Exception as exc:
            raise function_error(exc) from exc
        return to_json(result, what=f"the return value of {self.spec.function_name}()")

    async def call_async(self, kwargs: dict[str, Any]) -> bytes:
        """Run a coroutine endpoint on the loop and encode its result."""
        try:
            result = await self.function(**kwargs)
        except Exception as exc:
            raise function_error(exc) from exc
        return to_json(result, what=f"the return value of {self.spec.function_name}()")

    async def stream(self, kwargs: dict[str, Any], pool: ThreadPoolExecutor) -> AsyncIterator[bytes]:
        """Run a streaming endpoint, yielding each chunk as soon as the generator produces it."""
        what = f"a chunk streamed by {self.spec.function_name}()"
        if self.kind is CallKind.async_generator:
            agen = self.function(**kwargs)
            try:
                while True:
                    try:
                        chunk = await agen.__anext__()
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        raise function_error(exc) from exc
                    yield encode_chunk(chunk, what=what)
            finally:
                await agen.aclose()
        else:
            gen = self.function(**kwargs)
            step: Future[Any] | None = None
            try:
                while True:
                    try:
                        # Each step runs in the pool so a slow producer never blocks the replica's loop,
                        # and a cancel lands between two chunks.
                        step = pool.submit(next, gen, _END)
                        chunk = await asyncio.wrap_future(step)
                    except Exception as exc:
                        raise function_error(exc) from exc
                    if chunk is _END:
                        return
                    yield encode_chunk(chunk, what=what)
            finally:
                if step is not None and not step.done():
                    # Cancelled mid-step: the generator is still running in its thread, and closing it now
                    # fails ("generator already executing"). Close it when the step returns, at its `yield`.
                    step.add_done_callback(lambda _: pool.submit(gen.close))
                else:
                    await asyncio.wrap_future(pool.submit(gen.close))


def _takes(function: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(function).parameters
