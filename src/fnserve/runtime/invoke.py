"""Calling one endpoint inside a replica: arguments in (injected, validated, coerced), JSON out (or, for bytes and
`fs.Response`, the fields of a MEDIA frame).

`BoundEndpoint` is built once per endpoint after the initializer ran; per call it only validates
the arguments and runs the function the way its kind requires.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import inspect
import json
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ValidationError

from fnserve.errors import FnserveError, FunctionError, InvalidRequest, ValidationFailed
from fnserve.request import REQUEST_KEY, Request
from fnserve.request import from_context as request_from_context
from fnserve.responses import to_frame
from fnserve.sdk.context import ASSETS_PARAMETER, JOB_PARAMETER, JobContext
from fnserve.sdk.introspect import API_PARAMETER, CallKind, arguments_model, resolved_annotations
from fnserve.sdk.service import Endpoint
from fnserve.uploads import ACCEPT_KEY, FILES_KEY, RAW_BODY_KEY, File, wants_file

if TYPE_CHECKING:
    from fnserve.composition.batching import Batcher

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_END = object()


def _json_default_quietly(value: Any) -> Any:
    """What orjson cannot write itself, made JSON-ready; a bare TypeError for the rest, its message left to
    `_json_default` (a repr may be costly, and a first try's failure is not reported)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # arrays orjson does not write itself
        return value.tolist()
    raise TypeError


def _json_default(value: Any) -> Any:
    with contextlib.suppress(TypeError):
        return _json_default_quietly(value)
    if isinstance(value, bytes | bytearray | memoryview | str):
        value = value[:200]  # its repr, cut below, would otherwise be made whole first: 4 MB for 1 MiB of bytes
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


# A result as the replica sends it: JSON bytes (RESULT), or a raw answer's fields (MEDIA: responses.to_frame).
Encoded = bytes | tuple[bytes, str, int, list[list[str]]]


def encode_result(value: Any, *, what: str, accept: str | None = None) -> Encoded:
    """A return value as JSON bytes, or, when it is bytes, a `Response` or a PIL image, as a MEDIA frame's fields.
    Those are recognised only after orjson refused them, so a JSON result pays nothing for them. `accept`, the
    caller's Accept header when the gateway passed it on, may ask for another encoding (a numpy array as `.npy`)."""
    if accept is not None:
        media = to_frame(value, accept)
        if media is not None:
            return media
    try:
        return orjson.dumps(value, default=_json_default_quietly, option=_JSON_OPTIONS)
    except TypeError:
        media = to_frame(value)
        if media is not None:
            return media
        return to_json(value, what=what)  # raises the error that names the value, or writes a big integer


def encode_chunk(chunk: Any, *, what: str) -> bytes:
    """A streamed chunk as bytes: text as UTF-8, bytes as they are, anything else as a JSON line."""
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    return to_json(chunk, what=what) + b"\n"


def function_error(exc: BaseException) -> FnserveError:
    """The user's exception as the caller sees it: type and message, never a traceback. An error another service
    answered a handle call with goes on as it is, with that service's code (composition/channel.py)."""
    if isinstance(exc, FnserveError) and getattr(exc, "from_handle", None) is not None:
        return exc
    message = str(exc)
    return FunctionError(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


class BoundEndpoint:
    """An endpoint bound to a replica's state, ready to be called many times."""

    def __init__(
        self, endpoint: Endpoint, state: Any, api: dict[str, Any], pool: ThreadPoolExecutor | None = None
    ) -> None:
        self.endpoint = endpoint
        self.spec = endpoint.spec
        self.kind = endpoint.call_kind
        # Sync, non-streaming endpoints skip the task: their call goes straight to the thread pool.
        self.runs_in_thread = self.kind is CallKind.sync
        self.function: Callable[..., Any] = (
            endpoint.function.__get__(state) if endpoint.is_method else endpoint.function
        )
        injected = state if isinstance(state, dict) and not endpoint.is_method else {}
        self._model, self._names = arguments_model(endpoint.signature, self.spec, injected)
        self._extra: dict[str, Any] = {API_PARAMETER: api} if _takes(endpoint.function, API_PARAMETER) else {}
        self._takes_job = _takes(endpoint.function, JOB_PARAMETER)
        self._takes_assets = _takes(endpoint.function, ASSETS_PARAMETER)
        # Only endpoints that take a raw body (a bytes or fs.File parameter) look for one: the others keep the
        # plain `arguments` and pay nothing for it.
        hints = resolved_annotations(endpoint.signature)
        self._as_file = {name: wants_file(hints.get(name)) for name in self.spec.file_parameters}
        if self._as_file:
            self.arguments = self._arguments_with_raw_body  # type: ignore[method-assign]
        if self.spec.request_parameter is not None:
            self.arguments = self._arguments_with_request  # type: ignore[method-assign]
        self.batcher: Batcher | None = None
        if endpoint.batch is not None:
            self._batched(endpoint, injected, pool)

    def _batched(self, endpoint: Endpoint, injected: dict[str, Any], pool: ThreadPoolExecutor | None) -> None:
        """Calls go through the endpoint's batcher (composition/batching.py), which runs the function once per
        batch; each caller's element of the result is encoded here, as an unbatched result would be."""
        from fnserve.composition.batching import Batcher  # only replicas that batch load it

        assert endpoint.batch is not None
        defaults = inspect.signature(endpoint.function).parameters
        shared = {
            name: injected[name] if name in injected else defaults[name].default
            for name in endpoint.shared
            if name in injected or defaults[name].default is not inspect.Parameter.empty
        }
        self.batcher = Batcher(
            self.function,
            endpoint.batch,
            kind=self.kind,
            pool=pool,
            shared=shared,
            passed_once=frozenset(self._extra),
            name=self.spec.function_name,
        )
        self.runs_in_thread = False
        self.call_async = self._call_batched  # type: ignore[method-assign]
        self.stream = self._stream_batched  # type: ignore[method-assign]

    async def _call_batched(self, kwargs: dict[str, Any]) -> Encoded:
        assert self.batcher is not None
        result = await self.batcher.call(kwargs)
        accept = kwargs.accept if kwargs.__class__ is _Accepting else None
        return encode_result(result, what=f"the return value of {self.spec.function_name}()", accept=accept)

    async def _stream_batched(self, kwargs: dict[str, Any], pool: ThreadPoolExecutor) -> AsyncIterator[bytes]:
        assert self.batcher is not None
        what = f"a chunk streamed by {self.spec.function_name}()"
        async for chunk in self.batcher.stream(kwargs):
            yield encode_chunk(chunk, what=what)

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
        if context is not None and ACCEPT_KEY in context:  # the caller's Accept, for encode_result
            return _Accepting(kwargs, context[ACCEPT_KEY])
        return kwargs

    def _arguments_with_raw_body(
        self, body: bytes, path: dict[str, str], query: dict[str, Any], context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`arguments` for an endpoint with a file parameter: a raw body (the gateway says so in the context, with
        its content type) goes to that parameter, and the other arguments come from the query string and path."""
        if not context:
            return BoundEndpoint.arguments(self, body, path, query, context)
        values = dict(query) if query else {}
        raw = context.get(RAW_BODY_KEY)
        if raw is not None:
            name = raw["parameter"]
            values[name] = File.from_bytes(body, content_type=raw["content_type"]) if self._as_file[name] else body
        parts = context.get(FILES_KEY)
        if parts is not None:  # multipart: a part for a parameter that is not a file stays as it came (bytes)
            for name, (content_type, filename, data) in parts.items():
                wants = self._as_file.get(name)
                if isinstance(data, File):  # a large upload, spooled as it arrived (runtime/spool.py)
                    values[name] = data if wants else data.read()
                    continue
                values[name] = File.from_bytes(data, content_type=content_type, filename=filename) if wants else data
        if raw is None and parts is None:
            return BoundEndpoint.arguments(self, body, path, query, context)
        return BoundEndpoint.arguments(self, b"", path, values, context)

    def _arguments_with_request(
        self, body: bytes, path: dict[str, str], query: dict[str, Any], context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`arguments` for an endpoint with an `fs.Request` parameter: the body goes to it whole, the other
        arguments come from the path and query string. A job (no request in its context) gets its JSON body, and a
        Request made of it."""
        facts = context.get(REQUEST_KEY) if context else None
        if facts is None:
            kwargs = BoundEndpoint.arguments(self, body, path, query, context)
            request = Request("POST", self.spec.path, {"content-type": "application/json"}, dict(query or {}), body)
        else:  # the query string is the request's: its names that are no parameter stay in `request.query` only
            known = self.spec.parameters
            named = query if self.spec.var_kwargs else {k: v for k, v in (query or {}).items() if k in known}
            kwargs = BoundEndpoint.arguments(self, b"", path, named, context)
            request = request_from_context(facts, body)
        assert self.spec.request_parameter is not None
        kwargs[self.spec.request_parameter] = request
        return kwargs

    def call_in_thread(self, kwargs: dict[str, Any]) -> Encoded:
        """Run a sync endpoint and encode its result, both in the calling (pool) thread."""
        try:
            result = self.function(**kwargs)
        except Exception as exc:
            raise function_error(exc) from exc
        accept = kwargs.accept if kwargs.__class__ is _Accepting else None
        return encode_result(result, what=f"the return value of {self.spec.function_name}()", accept=accept)

    async def call_async(self, kwargs: dict[str, Any]) -> Encoded:
        """Run a coroutine endpoint on the loop and encode its result."""
        try:
            result = await self.function(**kwargs)
        except Exception as exc:
            raise function_error(exc) from exc
        accept = kwargs.accept if kwargs.__class__ is _Accepting else None
        return encode_result(result, what=f"the return value of {self.spec.function_name}()", accept=accept)

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
            producer = _ThreadedGenerator(self.function(**kwargs), what=what)
            producer.start(pool)
            try:
                while True:
                    chunks = await producer.next_chunks()
                    if not chunks:
                        return
                    for chunk in chunks:
                        yield chunk
            finally:
                producer.stop()


class _Accepting(dict[str, Any]):
    """A call's arguments, and the caller's Accept header that the gateway passed on (`uploads.ACCEPT_KEY`): one
    object from `arguments` to `call_*`, so the worker needs no change and a call without it pays one class test."""

    __slots__ = ("accept",)

    def __init__(self, kwargs: dict[str, Any], accept: str) -> None:
        super().__init__(kwargs)
        self.accept = accept


class _ThreadedGenerator:
    """A sync generator run to its end in one pool thread, its chunks (encoded there) handed to the loop in batches.

    One thread for the whole stream, not one hop per chunk, and one wakeup of the loop per batch, not per chunk:
    a token stream costs a third of what it did. The producer stays at most `AHEAD` chunks ahead of the
    consumer, and a stop (the caller went away) takes effect between two chunks, where the generator is closed.
    """

    AHEAD = 64

    def __init__(self, gen: Any, *, what: str) -> None:
        self.gen = gen
        self.what = what
        self.loop = asyncio.get_running_loop()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.lock = threading.Lock()
        self.room = threading.Semaphore(self.AHEAD)
        self.arrived = asyncio.Event()
        self.stopping = False
        self.done = False
        self.error: BaseException | None = None

    def start(self, pool: ThreadPoolExecutor) -> None:
        pool.submit(contextvars.copy_context().run, self._produce)  # the call's model id too (model_cache.py)

    def _produce(self) -> None:
        try:
            for chunk in self.gen:
                encoded = encode_chunk(chunk, what=self.what)
                self.room.acquire()
                if self.stopping:
                    return
                with self.lock:
                    was_empty = not self.chunks
                    self.chunks.append(encoded)
                if was_empty:  # otherwise the loop has not taken the last batch yet, and will take this one with it
                    self.loop.call_soon_threadsafe(self.arrived.set)
        except FunctionError as exc:
            self.error = exc
        except BaseException as exc:  # SystemExit too: it ends this stream, not the replica
            self.error = function_error(exc)
        finally:
            self.gen.close()
            self.done = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: the replica is exiting
                self.loop.call_soon_threadsafe(self.arrived.set)

    async def next_chunks(self) -> list[bytes]:
        """The chunks produced since the last call, waiting for at least one; [] at the end. Raises the generator's
        error once the chunks before it are taken."""
        while True:
            with self.lock:
                chunks = list(self.chunks)
                self.chunks.clear()
                self.arrived.clear()
            if chunks:
                for _ in chunks:
                    self.room.release()
                return chunks
            if self.done:
                if self.error is not None:
                    raise self.error
                return []
            await self.arrived.wait()

    def stop(self) -> None:
        self.stopping = True
        self.room.release()  # a producer waiting for room wakes, sees the stop, and closes the generator


def _takes(function: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(function).parameters
