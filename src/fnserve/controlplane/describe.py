"""`POST /v1/describe`: the spec of a service whose packages the client does not have, read on the server inside its
built environment (what `fnserve deploy` falls back to when the import fails on the client, and what
`fnserve deploy-model` uses). The answer streams as NDJSON: the build's progress and log lines as they come, then
the spec or the error, so a long build shows its progress and never looks hung."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from fnserve.controlplane.schemas import ERROR_RESPONSES
from fnserve.controlplane.supervisor import Supervisor
from fnserve.envs.builder import BuildProgress
from fnserve.envs.requirements import EnvironmentSpec, check_requirements
from fnserve.envs.runtime import bootstrap_command, server_python
from fnserve.errors import EnvBuildFailed, FnserveError, InvalidRequest, SpecError
from fnserve.runtime.describe import DESCRIBE_FLAG
from fnserve.store import ArtifactStore
from fnserve.store.environments import EnvironmentStore

DESCRIBE_TIMEOUT_S = 120.0  # importing the user's module; the build before it has no limit
STDERR_TAIL_CHARS = 4000


class DescribeRequest(BaseModel):
    code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="an uploaded project archive")
    entrypoint: str = Field(min_length=3, max_length=300, description="module:attribute")
    requirements: list[str] | None = Field(default=None, max_length=500)
    env: str | None = Field(default=None, max_length=63)
    python: str | None = Field(default=None, max_length=16)


def _line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"


def build_describe_router(
    supervisor: Supervisor, artifacts: ArtifactStore, environments: EnvironmentStore
) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES, tags=["environments"])

    @router.post("/describe")
    async def describe(body: DescribeRequest) -> StreamingResponse:
        """Build (or find) the environment, import the service in it and answer its spec. NDJSON lines:
        `{"event": "progress", ...}` and `{"event": "log", "line"}` while it builds, then `{"event": "spec", "spec"}`
        or `{"event": "error", "error": {"code", "message"}}`."""
        artifacts.require(body.code_sha256, what="code")
        code_dir = await asyncio.to_thread(artifacts.unpacked, body.code_sha256)
        if body.env is not None:
            named = await asyncio.to_thread(environments.get, body.env)
            spec = EnvironmentSpec(named.requirements, body.python or named.python, env=named.name)
        else:
            try:
                requirements = check_requirements(body.requirements or [])
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            spec = EnvironmentSpec(requirements, body.python or server_python())
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def listen(progress: BuildProgress, line: str | None) -> None:
            if line is not None:
                events.put_nowait({"event": "log", "line": line})
            events.put_nowait(
                {
                    "event": "progress",
                    "phase": progress.phase,
                    "done": progress.done,
                    "total": progress.total,
                    "text": progress.text,
                }
            )

        async def work() -> None:
            try:
                built = await supervisor.env_builder.ensure(spec, listen)
                argv = bootstrap_command(built.python, built.overlay, DESCRIBE_FLAG, str(code_dir), body.entrypoint)
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
                try:
                    async with asyncio.timeout(DESCRIBE_TIMEOUT_S):
                        stdout, stderr = await process.communicate()
                except TimeoutError:
                    process.kill()
                    raise SpecError(
                        f"importing {body.entrypoint} took over {DESCRIBE_TIMEOUT_S:g} s in its environment; "
                        "move slow work from module level into the initializer"
                    ) from None
                if process.returncode != 0:
                    text = stderr.decode(errors="replace")[-STDERR_TAIL_CHARS:].rstrip()
                    raise SpecError(f"{body.entrypoint} could not be loaded in its environment:\n{text}")
                events.put_nowait({"event": "spec", "spec": orjson.loads(stdout), "lock": built.lock})
            except (EnvBuildFailed, SpecError) as exc:
                events.put_nowait({"event": "error", "error": {"code": exc.code, "message": exc.message}})
            except FnserveError as exc:
                events.put_nowait({"event": "error", "error": {"code": exc.code, "message": exc.message}})
            finally:
                events.put_nowait(None)

        async def stream() -> AsyncIterator[bytes]:
            task = asyncio.create_task(work())
            try:
                while (event := await events.get()) is not None:
                    yield _line(event)
            finally:
                if not task.done():
                    task.cancel()

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    return router
