"""One replica: load the user's code, run the initializer once, serve calls over the replica protocol.

Started by a backend as `python -m fnserve.runtime.worker ...` (or `fnserve worker ...`). The worker
connects to the server's replica socket, so when the server goes away the connection closes and
the worker exits: no orphans, even after a SIGKILL of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import os
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fnserve._loop import loop_factory
from fnserve._loop import run as run_on_uvloop
from fnserve._malloc import keep_large_buffers
from fnserve._tracebacks import user_traceback
from fnserve.apps.lifespan import AppStartupFailed
from fnserve.apps.load import as_asgi
from fnserve.apps.serving import AppServing
from fnserve.composition import model_cache
from fnserve.composition.channel import ContextPool, HandleChannel, current_call, inbound
from fnserve.composition.channel import install as install_channel
from fnserve.composition.credentials import CREDENTIAL_VARIABLE
from fnserve.composition.multiplex import MODEL_ID_KEY
from fnserve.errors import FnserveError, InternalError
from fnserve.openapi import api_description
from fnserve.runtime.health import ReplicaHealth
from fnserve.runtime.invoke import BoundEndpoint, Encoded
from fnserve.runtime.protocol import FrameReader, FrameWriter, Kind, ProtocolError, widen_send_buffer
from fnserve.runtime.spool import SpooledUpload
from fnserve.sdk.health import build_health_check
from fnserve.sdk.loader import load_entrypoint, load_pickled_service, loads_init_arguments
from fnserve.sdk.service import Service
from fnserve.spec import ServiceSpec
from fnserve.uploads import UPLOAD_KEY

# `python -m fnserve.runtime.worker --standby`: start, import, and wait on stdin to be told which replica to be.
STANDBY_FLAG = "--standby"


@dataclass(frozen=True)
class WorkerOptions:
    connect: str
    replica_id: str
    code_dir: Path | None
    entrypoint: str | None
    pickle_path: Path | None
    init_path: Path | None
    max_threads: int
    command: str | None = None  # a command service's ServiceSpec, as JSON
    credential: str = ""  # what HELLO carries to prove which replica this is (composition/credentials.py)


def parse_args(argv: list[str] | None = None) -> WorkerOptions:
    parser = argparse.ArgumentParser(prog="fnserve worker", description="Run one fnserve replica.")
    parser.add_argument("--connect", required=True, help="the server's replica socket (a Unix socket path)")
    parser.add_argument("--replica-id", required=True)
    parser.add_argument("--code-dir", type=Path, help="unpacked project folder (with --entrypoint)")
    parser.add_argument("--entrypoint", help="module:attribute of the service inside --code-dir")
    parser.add_argument("--pickle", type=Path, dest="pickle_path", help="a cloudpickled service")
    parser.add_argument("--init", type=Path, dest="init_path", help="initializer (args, kwargs): JSON or pickle")
    parser.add_argument("--max-threads", type=int, default=8, help="threads for sync endpoints")
    parser.add_argument("--command", help="a command service's ServiceSpec (JSON): run its command in --code-dir")
    args = parser.parse_args(argv)
    if args.command is not None:
        if args.pickle_path is not None or args.entrypoint is not None:
            parser.error("--command runs a command in --code-dir; it takes no --pickle or --entrypoint")
    elif (args.pickle_path is None) == (args.code_dir is None or args.entrypoint is None):
        parser.error("give either --pickle, or --code-dir with --entrypoint (or --command)")
    # Out of the environment before user code runs, so neither it nor its subprocesses (a command's) see it.
    return WorkerOptions(**vars(args), credential=os.environ.pop(CREDENTIAL_VARIABLE, ""))


def load_service(options: WorkerOptions) -> Service[Any]:
    if options.command is not None:  # the version's spec says what to run: no user code to load
        if options.code_dir is not None:
            os.chdir(options.code_dir)
        from fnserve.sdk.command import command_service_for

        return command_service_for(ServiceSpec.model_validate_json(options.command))
    if options.pickle_path is not None:
        return load_pickled_service(options.pickle_path.read_bytes())
    assert options.code_dir is not None
    assert options.entrypoint is not None
    os.chdir(options.code_dir)
    return load_entrypoint(options.code_dir, options.entrypoint)


def initialize(options: WorkerOptions) -> tuple[Service[Any], Any]:
    """Load the code and run the initializer once. Returns the service and its state."""
    service = load_service(options)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if options.init_path is not None:
        args, kwargs = loads_init_arguments(options.init_path.read_bytes())
    state = service.initializer(*args, **kwargs)
    if inspect.isawaitable(state):
        state = asyncio.run(_await(state))
    if service.spec.http_app is not None:
        return service, state  # the app (or what makes it, for a command): apps/load.py
    if not service.is_class and not isinstance(state, dict):
        raise TypeError(
            f"the initializer {service.name}() must return a dict of values for the endpoints, "
            f"got {type(state).__name__}; return {{}} if there is nothing to share"
        )
    return service, state


async def _await(awaitable: Any) -> Any:
    return await awaitable


class ReplicaServer(asyncio.Protocol):
    """The worker's end of the connection: runs each CALL, answers PING (then runs `check_health()`, if the service
    has one, and sends its result), honours CANCEL.

    A sync endpoint's call is submitted straight to the thread pool (no task: this is the hot path);
    coroutines and streams run as tasks on the loop.
    """

    def __init__(self, options: WorkerOptions, done: asyncio.Future[None]) -> None:
        self.options = options
        self.done = done
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.endpoints: list[BoundEndpoint] = []
        self.calls: dict[int, asyncio.Task[None] | Future[Encoded]] = {}
        self.writer: FrameWriter | None = None
        self.pool = ThreadPoolExecutor(max_workers=options.max_threads, thread_name_prefix="fnserve-endpoint")
        self.health: ReplicaHealth | None = None
        self.app: AppServing | None = None  # an app service's app (fnserve/apps/)
        # Calls whose upload is still arriving (runtime/spool.py): (endpoint index, path parameters, upload)
        self.uploads: dict[int, tuple[int, dict[str, str], SpooledUpload]] = {}
        self.ready = False
        self.channel: HandleChannel | None = None  # this replica's calls to other services (composition/)
        self.composing = False  # its service uses others: each call's id and deadline are kept for its handle calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        widen_send_buffer(transport)
        self.writer = FrameWriter(self.transport)
        self.send(Kind.HELLO, self.options.replica_id, os.getpid(), self.options.credential)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None:
            self.channel.close()
        if not self.done.done():
            self.done.set_result(None)

    def send(self, *message: Any) -> None:
        if self.writer is not None:
            self.writer.send(*message)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except ProtocolError as exc:
            print(f"Replica [{self.options.replica_id}] got a bad frame from the server: {exc}", file=sys.stderr)
            assert self.transport is not None
            self.transport.close()
            return
        for message in messages:
            kind = message[0]
            if kind == Kind.CALL:
                self.start_call(*message[1:])
            elif kind == Kind.CANCEL:
                call = self.calls.pop(message[1], None)
                if call is not None:
                    call.cancel()  # a sync call already running in a thread finishes, and its result is dropped
                    if self.composing:  # and its handle calls are cancelled, in their replicas too
                        assert self.channel is not None
                        self.channel.cancel_inbound(message[1])
                elif self.uploads:
                    self.drop_upload(message[1])
            elif kind == Kind.PING:
                # The PONG goes at once, from the loop: it proves the replica is alive even while a check runs.
                checking = self.ready and self.health is not None
                self.send(Kind.PONG, message[1], len(self.calls), checking)
                if checking:
                    asyncio.ensure_future(self.report_health(message[1]))
            elif kind == Kind.SHUTDOWN:
                asyncio.ensure_future(self.shutdown())
            elif kind == Kind.BODY and message[1] in self.uploads:
                self.upload_part(message)
            elif self.channel is not None and self.channel.is_answer(kind):  # to one of our handle calls
                self.channel.answer(message)
            elif self.app is not None:
                self.app_frame(kind, message)

    def upload_part(self, message: list[Any]) -> None:
        """A part of a call's upload; the call starts once it is whole."""
        request_id = message[1]
        endpoint_index, path, upload = self.uploads[request_id]
        whole = upload.add(*message[2:])
        if whole is not None:
            del self.uploads[request_id]
            query, context = whole
            self.start_call(request_id, endpoint_index, b"", path, query, context)

    def drop_upload(self, request_id: int) -> None:
        pending = self.uploads.pop(request_id, None)
        if pending is not None:
            pending[2].discard()

    def app_frame(self, kind: int, message: list[Any]) -> None:
        """A frame of an app service: a request or a WebSocket opened, or a part of one (apps/serving.py)."""
        assert self.app is not None
        if kind == Kind.HTTP:
            self.track(message[1], self.app.open_http(*message[1:5]))
        elif kind == Kind.BODY:
            self.app.body(*message[1:4])
        elif kind == Kind.BODY_ACK:
            self.app.acknowledged(*message[1:3])
        elif kind == Kind.WS_OPEN:
            self.track(message[1], self.app.open_websocket(*message[1:3]))
        elif kind == Kind.WS_MESSAGE:
            self.app.ws_message(*message[1:3])
        elif kind == Kind.WS_CLOSE:
            self.app.ws_close(*message[1:4])

    def track(self, request_id: int, task: asyncio.Task[None]) -> None:
        """Keep an app's request or WebSocket with the calls until it ends: CANCEL cancels it, SHUTDOWN waits."""
        self.calls[request_id] = task
        task.add_done_callback(lambda _: self.calls.pop(request_id, None))

    def start_call(
        self,
        request_id: int,
        endpoint_index: int,
        body: bytes,
        path: dict[str, str],
        query: dict[str, Any],
        context: dict[str, Any] | None = None,
    ) -> None:
        if context is not None and UPLOAD_KEY in context:  # its body follows in BODY frames: spooled first
            self.uploads[request_id] = (endpoint_index, path, SpooledUpload(request_id, query, context, self.send))
            return
        if self.composing:  # the call's task or thread sees it (a copy of this context): its handle calls carry it on
            token = current_call.set(inbound(request_id, context))
            try:
                self.run_call(request_id, endpoint_index, body, path, query, context)
            finally:
                current_call.reset(token)
            return
        self.run_call(request_id, endpoint_index, body, path, query, context)

    def run_call(
        self,
        request_id: int,
        endpoint_index: int,
        body: bytes,
        path: dict[str, str],
        query: dict[str, Any],
        context: dict[str, Any] | None,
    ) -> None:
        endpoint = self.endpoints[endpoint_index] if self.ready else None
        if endpoint is None or not endpoint.runs_in_thread:
            self.calls[request_id] = asyncio.ensure_future(
                self.handle_call(request_id, endpoint_index, body, path, query, context)
            )
            return
        try:
            kwargs = endpoint.arguments(body, path, query, context)
        except FnserveError as exc:
            self.send(Kind.ERROR, request_id, exc.code, exc.message, exc.details)
            return
        if context is None or MODEL_ID_KEY not in context:
            future = self.pool.submit(endpoint.call_in_thread, kwargs)
        else:  # the thread runs with the call's model id (fs.get_multiplexed_model_id())
            future = self.pool.submit(
                model_cache.run_with_model_id, context[MODEL_ID_KEY], endpoint.call_in_thread, kwargs
            )
        self.calls[request_id] = future
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self.finish_call, request_id, done))

    def finish_call(self, request_id: int, future: Future[Encoded]) -> None:
        if self.calls.pop(request_id, None) is None or future.cancelled():
            return  # cancelled: nobody waits for the answer
        exc = future.exception()
        if exc is None:
            self.send_result(request_id, future.result())
        else:
            self.send_failure(request_id, exc)

    def send_result(self, request_id: int, result: Encoded) -> None:
        """A call's answer: JSON as RESULT, anything else (bytes, fs.Response) as MEDIA."""
        if result.__class__ is bytes:
            self.send(Kind.RESULT, request_id, result)
        else:
            self.send(Kind.MEDIA, request_id, *result)

    def send_failure(self, request_id: int, exc: BaseException) -> None:
        """A call's error: ours as it is; any other is a bug of ours, logged, and told the caller generically."""
        if isinstance(exc, FnserveError):
            self.send(Kind.ERROR, request_id, exc.code, exc.message, exc.details)
            return
        traceback.print_exception(exc)
        self.send(Kind.ERROR, request_id, "internal_error", f"replica failed to run the call: {exc!r}", None)

    async def handle_call(
        self,
        request_id: int,
        endpoint_index: int,
        body: bytes,
        path: dict[str, str],
        query: dict[str, Any],
        context: dict[str, Any] | None,
    ) -> None:
        try:
            if not self.ready:
                raise InternalError("replica received a call before its initializer finished")
            endpoint = self.endpoints[endpoint_index]
            kwargs = endpoint.arguments(body, path, query, context)
            if context is not None and MODEL_ID_KEY in context:  # this task's own: fs.get_multiplexed_model_id()
                model_cache.set_model_id(context[MODEL_ID_KEY])
            if endpoint.spec.streaming:
                async for chunk in endpoint.stream(kwargs, self.pool):
                    self.send(Kind.CHUNK, request_id, chunk)
                self.send(Kind.END, request_id)
            else:
                self.send_result(request_id, await endpoint.call_async(kwargs))
        except asyncio.CancelledError:
            pass  # the caller went away; nobody is waiting for an answer
        except Exception as exc:  # keep serving whatever it was
            self.send_failure(request_id, exc)
        finally:
            self.calls.pop(request_id, None)

    async def report_health(self, ping_id: int) -> None:
        assert self.health is not None
        passed, message = await self.health.check()
        self.send(Kind.HEALTH, ping_id, passed, message)

    async def shutdown(self) -> None:
        """Stop after the calls in progress finish (an app's WebSockets are closed first, its lifespan shut down
        last); the server kills us if this takes too long."""
        if self.app is not None:
            self.app.going_away()
        while self.calls:
            pending = [asyncio.wrap_future(c) if isinstance(c, Future) else c for c in self.calls.values()]
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(0)  # let finish_call callbacks, queued from pool threads, run
        if self.app is not None:
            await self.app.stop()
        if self.writer is not None:
            self.writer.flush()  # results sent in this loop iteration are still queued; close() would drop them
        if self.transport is not None:
            self.transport.close()


async def serve(options: WorkerOptions) -> None:
    loop = asyncio.get_running_loop()
    keep_large_buffers(loop)
    done: asyncio.Future[None] = loop.create_future()
    _, server = await loop.create_unix_connection(lambda: ReplicaServer(options, done), options.connect)
    server.channel = HandleChannel(server.send, loop)
    install_channel(server.channel)  # fs.handle(...) in this process calls over this connection
    try:
        service, state = await asyncio.to_thread(initialize, options)
        if service.spec.uses:  # pool threads run in their caller's context, so handle calls know their call
            server.pool.shutdown(wait=False)
            server.pool = ContextPool(max_workers=options.max_threads, thread_name_prefix="fnserve-endpoint")
            server.composing = True
        health = None if service.health is None else ReplicaHealth(service.health, state)
        if service.spec.http_app is not None:  # its lifespan runs on this loop, where its requests will
            app = as_asgi(state, service.spec, max_threads=options.max_threads)
            server.app = AppServing(app, server.send)
            await server.app.start()
            state = None
            if service.spec.command is not None:  # its health URI answers the server's pings (docs/COMMANDS.md)
                from fnserve.apps.command import CommandApp

                assert isinstance(app, CommandApp)
                health = ReplicaHealth(build_health_check(app.check_health, is_method=False), None)
    except BaseException as exc:
        # The log keeps the whole traceback; the reason the owner sees holds their own frames only (_tracebacks.py).
        whole = "".join(traceback.format_exception(exc)).rstrip()
        print(f"Replica [{options.replica_id}] initializer failed:\n{whole}", file=sys.stderr)
        if isinstance(exc, AppStartupFailed) and "\n" in str(exc):
            # Its first line says what failed; the rest (a command's last output) stands where a traceback would.
            summary, _, details = str(exc).partition("\n")
            server.send(Kind.INIT_FAILED, summary, details)
        else:
            server.send(Kind.INIT_FAILED, f"{type(exc).__name__}: {exc}", user_traceback(exc, root=options.code_dir))
        await asyncio.sleep(0)  # let the frame reach the socket buffer before closing
        assert server.transport is not None
        server.transport.close()
        return
    api = api_description(service.spec, state if isinstance(state, dict) else None)
    server.endpoints = [BoundEndpoint(endpoint, state, api, server.pool) for endpoint in service.endpoints]
    for index, bound in enumerate(server.endpoints):
        if bound.batcher is not None:  # what each batch did, for the server's /metrics
            bound.batcher.report = functools.partial(server.send, Kind.BATCH, index)
    server.health = health
    server.ready = True
    if model_cache.loaders_defined():  # MODELS before READY: the server learns the service takes model ids
        model_cache.report_to(_models_reporter(server, loop))
    server.send(Kind.READY, api)
    await done


def _models_reporter(server: ReplicaServer, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """What `@fs.multiplexed` loaders hold, sent as a MODELS frame when it changed: at once from the loop's thread (so
    the first report goes before READY), through the loop from an endpoint's thread (before that call's RESULT, which
    is queued after it)."""
    loop_thread = threading.get_ident()
    last: list[tuple[list[str], int, int]] = []

    def send() -> None:
        state = model_cache.snapshot()
        if not last or state != last[0]:
            last[:] = [state]
            server.send(Kind.MODELS, *state)

    def changed() -> None:
        if threading.get_ident() == loop_thread:
            send()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the replica is exiting
            loop.call_soon_threadsafe(send)

    return changed


def wait_for_assignment() -> list[str]:
    """A pre-started worker (`--standby`): everything is imported; wait for the server to say which replica to be.

    The server writes one JSON line on stdin: the replica's own environment variables (its GPUs, thread counts),
    its log file, and the arguments a worker started for it would have had. User code is not loaded yet, so
    the libraries it imports see those variables as if they had been there from the start.
    """
    import orjson

    loop_factory()  # imports uvloop now, so the replica does not pay for it
    line = sys.stdin.buffer.readline()
    if not line:  # the server closed the pipe without using us
        os._exit(0)
    assignment = orjson.loads(line)
    os.environ.update(assignment["env"])
    log = os.open(assignment["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # what a service prints is private
    quiet = os.open(os.devnull, os.O_RDONLY)
    for source, target in ((log, 1), (log, 2), (quiet, 0)):
        os.dup2(source, target)
    os.close(log)
    os.close(quiet)
    return list(assignment["argv"])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [STANDBY_FLAG]:
        argv = wait_for_assignment()
    options = parse_args(argv)
    try:
        run_on_uvloop(serve(options))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # Threads still running user code must not keep a replica alive after its server went away.
    os._exit(0)


if __name__ == "__main__":
    main()
