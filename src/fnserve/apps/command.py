"""`CommandApp`: any HTTP server run as a command (NVIDIA Cloud Functions' "a server exposing at least one inference
endpoint": an OpenAI-compatible LLM server, Triton, a binary in another language), served as an ASGI3 app, so a
replica runs it the way it runs any app.

Its lifespan startup runs the command in a process group of its own (`{port}` in it, and `$PORT`, become a free port
or the declared `inference_port`), copies its output into the replica's log while keeping the last lines, and waits
until `health_uri` answers 2xx. A command that exits first, or is not healthy within `startup_timeout_s`, fails the
startup with its exit code and last lines: the replica reports them as its failure. Then each request is forwarded to
it (`proxy.py`). If the command exits while serving, the replica exits too, so the supervisor replaces it; lifespan
shutdown stops the command (SIGTERM, SIGKILL after `stop_timeout_s`), and a reaper (`reaper.py`) stops it when the
replica dies any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from fnserve.apps import reaper
from fnserve.apps.proxy import Message, Receive, Scope, Send, Upstream, _read_head, send_error
from fnserve.apps.ws_proxy import relay_websocket
from fnserve.errors import NoReplicasAvailable
from fnserve.spec import CommandSpec

TAIL_LINES = 40  # of the command's output, kept for the message of a failure
_TAIL_LINE_CHARS = 500
_PROBE_TIMEOUT_S = 2.0  # while it starts: polled again soon
# Once it serves, a busy server gets longer (but less than the server's health_timeout_s, 10 s, for the whole check).
_SERVING_PROBE_TIMEOUT_S = 8.0
_OUTPUT_DRAIN_S = 1.0  # what the command printed last, read after it exited (something it started may hold the pipe)


class CommandFailed(Exception):
    """The command exited, or did not turn healthy in time; the message says which, with its last output."""


class OutputTail:
    """The last `lines` lines of an output, fed as it comes."""

    def __init__(self, lines: int = TAIL_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=lines)
        self.partial = b""

    def feed(self, data: bytes) -> None:
        *complete, self.partial = (self.partial + data).split(b"\n")
        for line in complete:
            self.lines.append(line.decode(errors="replace").rstrip("\r")[:_TAIL_LINE_CHARS])
        self.partial = self.partial[-_TAIL_LINE_CHARS * 4 :]

    def text(self) -> str:
        lines = list(self.lines)
        if self.partial:
            lines.append(self.partial.decode(errors="replace")[:_TAIL_LINE_CHARS])
        return "\n".join(lines)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the command binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def exit_replica(code: int, message: str) -> None:
    """What a replica does when its command exits while serving: say so in its log, and exit with the command's code
    (128 + the signal when it was killed; 1 when it exited with 0), so the supervisor replaces it."""
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code if code > 0 else 128 - code if code < 0 else 1)


class CommandApp:
    """An ASGI3 app that runs `command` (a shell command line) and forwards every request to it.

    Args:
        command: run with `/bin/sh -c` in `cwd`; `{port}` is replaced by the port it must listen on, also in `$PORT`.
        inference_port: the port it listens on, when fixed; None: a free port, given through `{port}` and `$PORT`.
        health_uri: the path polled until it answers 2xx, before the replica reports READY.
        startup_timeout_s: how long the command may take to turn healthy.
        stop_timeout_s: between SIGTERM and SIGKILL, at shutdown.
        cwd: its working folder (a project's own); None: the replica's.
        env: variables added to the replica's for it.
        on_exit: called with (exit code, message) when the command exits while serving; default: the replica exits.

    Example:
        >>> CommandApp("python serve.py --port {port}", health_uri="/health")  # then served like any ASGI app
    """

    def __init__(
        self,
        command: str,
        *,
        inference_port: int | None = None,
        health_uri: str = "/health",
        startup_timeout_s: float = 300.0,
        stop_timeout_s: float = 5.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        on_exit: Callable[[int, str], None] = exit_replica,
    ) -> None:
        if not command.strip():
            raise ValueError("command is empty; give the command line that starts the server")
        if not health_uri.startswith("/"):
            raise ValueError(f"health_uri must start with '/', got {health_uri!r}")
        self.command = command
        self.inference_port = inference_port
        self.health_uri = health_uri
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.cwd = cwd
        self.env = dict(env or {})
        self.on_exit = on_exit
        self.tail = OutputTail()
        self.process: asyncio.subprocess.Process | None = None
        self.reaper: asyncio.subprocess.Process | None = None
        self.upstream: Upstream | None = None
        self.command_line = command
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_spec(cls, spec: CommandSpec, *, cwd: Path | None = None) -> CommandApp:
        """What a replica of a command service serves (apps/load.py): its spec's command, run in `cwd` (the project's
        unpacked folder, the replica's working folder)."""
        return cls(
            spec.command,
            inference_port=spec.inference_port,
            health_uri=spec.health_uri,
            startup_timeout_s=spec.startup_timeout_s,
            cwd=cwd,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.upstream is None:
                await send_error(send, NoReplicasAvailable("the service's command has not started yet"))
                return
            await self.upstream.forward(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":
            if self.upstream is None:
                await receive()  # websocket.connect; closing before accepting refuses it (the client sees a 403)
                await send({"type": "websocket.close", "code": 1011, "reason": "the command has not started yet"})
                return
            await relay_websocket(self.upstream.host, self.upstream.port, scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except CommandFailed as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Run the command and wait until it is healthy; CommandFailed (the command stopped) when it is not."""
        port = self.inference_port or free_port()
        self.command_line = self.command.replace("{port}", str(port))
        started_at = time.monotonic()
        try:
            self.process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.command_line,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.command_environment(port),
                # A group of its own (in the replica's session, so its memory counts as the replica's): stopped whole,
                # by us or by the reaper. (uvloop takes no `process_group=`.)
                preexec_fn=os.setpgrp,
            )
        except OSError as exc:
            raise CommandFailed(f"the command could not start: {exc} (`{self.command_line}`)") from None
        self.reaper = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            reaper.__file__,
            str(self.process.pid),
            str(self.stop_timeout_s),
            stdin=subprocess.PIPE,
            preexec_fn=os.setpgrp,
        )
        print(f"Command [pid {self.process.pid}] started on port {port}: {self.command_line}", file=sys.stderr)
        assert self.process.stdout is not None
        pump = asyncio.ensure_future(self._pump(self.process.stdout))
        self.tasks.add(pump)
        problem = await self._wait_healthy(port)
        if problem is not None:
            await self._stop_process()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_OUTPUT_DRAIN_S):
                    await pump
            output = self.tail.text() or "(nothing)"
            shown = " ".join(self.command_line.split())  # on the first line: the message's summary
            raise CommandFailed(f"{problem} (`{shown}`); its last output:\n{output}")
        took_s = time.monotonic() - started_at
        print(f"Command [pid {self.process.pid}] answered GET {self.health_uri} after {took_s:.1f} s", file=sys.stderr)
        self.upstream = Upstream("127.0.0.1", port)
        monitor = asyncio.ensure_future(self._monitor())
        self.tasks.add(monitor)

    def command_environment(self, port: int) -> dict[str, str]:
        """The replica's variables, `env`, `$PORT`, and the replica's interpreter first on `$PATH`: `python` and the
        scripts of the service's packages (`vllm`, `tritonserver` wrappers...) are those of its own environment."""
        path = os.environ.get("PATH", os.defpath)
        return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{path}", **self.env, "PORT": str(port)}

    async def _wait_healthy(self, port: int) -> str | None:
        """None once `health_uri` answers 2xx; else what went wrong (the command exited, or the time ran out)."""
        assert self.process is not None
        exited = asyncio.ensure_future(self.process.wait())
        deadline = time.monotonic() + self.startup_timeout_s
        delay_s = 0.02
        last = "nothing answered"
        try:
            while True:
                last = await self._probe(port)
                if not last:
                    return None
                if exited.done():
                    return f"the command {describe_exit(exited.result())} before GET {self.health_uri} answered 2xx"
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    within = f"within {self.startup_timeout_s:g} s (last: {last})"
                    return f"the command did not answer GET {self.health_uri} with 2xx {within}"
                await asyncio.wait((exited,), timeout=min(delay_s, remaining_s))
                delay_s = min(delay_s * 1.5, 0.5)
        finally:
            exited.cancel()

    async def check_health(self) -> bool:
        """The replica's health check once it serves: `health_uri` still answers 2xx (a server that hangs or fails
        is replaced after the server's `health_failures` checks in a row)."""
        if self.upstream is None:
            return True
        problem = await self._probe(self.upstream.port, timeout_s=_SERVING_PROBE_TIMEOUT_S)
        if problem:
            raise RuntimeError(f"GET {self.health_uri}: {problem}")
        return True

    async def _probe(self, port: int, *, timeout_s: float = _PROBE_TIMEOUT_S) -> str:
        """'' when GET `health_uri` answers 2xx within `timeout_s`; else what it answered."""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                request = f"GET {self.health_uri} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                writer.write(request.encode())
                status, _, _ = await _read_head(reader)
        except ConnectionRefusedError:
            return "connection refused"
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            if writer is not None:
                writer.close()
        return "" if 200 <= status < 300 else f"status {status}"

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """The command's output into the replica's (its log), and into the tail."""
        out = sys.stdout.buffer
        while data := await stream.read(65_536):
            self.tail.feed(data)
            out.write(data)
            out.flush()

    async def _monitor(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        if self.stopping:
            return
        with contextlib.suppress(TimeoutError):  # its last words, in the log before the replica's own
            async with asyncio.timeout(_OUTPUT_DRAIN_S):
                await asyncio.gather(*(task for task in self.tasks if task is not asyncio.current_task()))
        self.on_exit(
            code,
            f"Command [pid {self.process.pid}] {describe_exit(code)} while serving; the replica stops so that it is "
            "replaced",
        )

    async def stop(self) -> None:
        """Stop the command (SIGTERM to its group, SIGKILL after `stop_timeout_s`) and its reaper."""
        self.stopping = True
        await self._stop_process()
        if self.upstream is not None:
            self.upstream.close()
        for task in self.tasks:
            task.cancel()

    async def _stop_process(self) -> None:
        self.stopping = True
        if self.process is not None:
            group = self.process.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                async with asyncio.timeout(self.stop_timeout_s):
                    await self.process.wait()
            except TimeoutError:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)  # what is left of the group: the command, or what it started
            await self.process.wait()
        if self.reaper is not None and self.reaper.returncode is None:
            assert self.reaper.stdin is not None
            self.reaper.stdin.close()  # its end of file: it finds the group gone, and exits
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.stop_timeout_s + 1):
                    await self.reaper.wait()
