"""Any HTTP server as a service, declared from Python: `fs.command_service(...)`, what `fnserve deploy --command`
makes too, and the service a replica of one runs (`command_service_for`). The replica's side is
`fnserve/apps/command.py`; docs/COMMANDS.md says how it behaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fnserve._units import parse_duration
from fnserve.errors import SpecError
from fnserve.sdk.apps import serve_as_app
from fnserve.sdk.environment import Environment
from fnserve.sdk.service import Service
from fnserve.spec import Autoscaling, CommandSpec, Resources, RetryPolicy, ServiceSpec

# The attribute of a command service that holds its project folder (uploaded with it; the command runs there).
PROJECT_ATTRIBUTE = "command_project"


def _runs_a_command() -> None:
    """A command service has no initializer of its own: its replicas run the command (apps/command.py)."""
    return None


def command_service(
    command: str,
    *,
    name: str,
    inference_url: str = "/",
    health_uri: str = "/health",
    inference_port: int | None = None,
    startup_timeout: float | str = 300.0,
    project: str | Path | None = None,
    resources: Resources | None = None,
    replicas: int | None = None,
    route_prefix: str | None = None,
    auth: bool = True,
    time_limit: float | str | None = None,
    autoscaling: Autoscaling | None = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int = 1024,
    max_body_bytes: int | None = None,
    retry: RetryPolicy | None = None,
    max_queued: int = 10_000,
    job_timeout: float | str = 3600.0,
    job_ttl: float | str = 86_400.0,
    result_retention: float | str = 1800.0,
    requirements: list[str] | None = None,
    env: str | Environment | None = None,
    python: str | None = None,
) -> Service[None]:
    """Serve any HTTP server as a service (NVIDIA Cloud Functions style): each replica runs `command`, waits until
    `health_uri` answers 2xx, and forwards every request under the route prefix to it, with fnserve's tokens,
    replicas, autoscaling, versions, queue, logs and metrics around it.

    Args:
        command: a shell command line; `{port}` in it (and `$PORT`) is the port the server must listen on.
        name: the service name; the route prefix is `/<name>` unless `route_prefix` says otherwise.
        inference_url: the path a queued job's input is POSTed to as JSON (`/run`, `/runsync`: docs/COMMANDS.md).
        health_uri: polled with GET until it answers 2xx; only then is the replica READY.
        inference_port: the port the server listens on, when it cannot be told one (`{port}` is then that port).
        startup_timeout: how long it may take to turn healthy (seconds, or "10m"); then the replica fails, with the
            command's exit code (if it exited) and its last output.
        project: a folder uploaded with the service, where the command runs (its scripts, its requirements.txt);
            None: an empty folder.
        max_body_bytes: the largest request body it takes (default: the server's).
        resources, replicas, route_prefix, auth, time_limit, autoscaling, max_ongoing_requests, max_queued_requests,
        retry, max_queued, job_timeout, job_ttl, result_retention, requirements, env, python: as for `@fs.service`.

    Example:
        >>> llm = fs.command_service(
        ...     "python -m vllm.entrypoints.openai.api_server --port {port}",
        ...     name="llm", inference_url="/v1/completions", health_uri="/health", replicas=2,
        ... )
        >>> fs.deploy(llm)().wait()
    """
    try:
        timeout_s = parse_duration(startup_timeout, field="startup_timeout")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    spec = CommandSpec(
        command=command,
        inference_url=inference_url,
        health_uri=health_uri,
        inference_port=inference_port,
        startup_timeout_s=timeout_s,
    )
    root = None if project is None else Path(project)
    if root is not None and not root.is_dir():
        raise SpecError(f"project {str(project)!r} is not a folder; give the folder the command runs in, or None")
    service = Service(
        _runs_a_command,
        name=name,
        resources=resources,
        replicas=replicas,
        route_prefix=route_prefix,
        auth=auth,
        time_limit=time_limit,
        autoscaling=autoscaling,
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        retry=retry,
        max_queued=max_queued,
        job_timeout=job_timeout,
        job_ttl=job_ttl,
        result_retention=result_retention,
        requirements=requirements,
        env=env,
        python=python,
    )
    _as_command(service, spec, max_body_bytes=max_body_bytes)
    setattr(service, PROJECT_ATTRIBUTE, root)
    return service


def command_service_for(spec: ServiceSpec) -> Service[None]:
    """The service a replica of a command service runs: nothing of the user's to import, the command from the
    version's spec (runtime/worker.py `--command`)."""
    if spec.command is None:
        raise SpecError(f"service {spec.name!r} runs no command")
    service = Service(_runs_a_command, name=spec.name, route_prefix=spec.route_prefix)
    _as_command(service, spec.command)
    service.description = spec.description
    return service


def command_project(service: Service[Any]) -> Path | None:
    """The folder a command service uploads; None: none given (an empty one is uploaded)."""
    found = getattr(service, PROJECT_ATTRIBUTE, None)
    return found if isinstance(found, Path) else None


def _as_command(service: Service[None], spec: CommandSpec, *, max_body_bytes: int | None = None) -> None:
    serve_as_app(service, "command", max_body_bytes=max_body_bytes)
    service.command = spec
    service.description = f"an HTTP server run as a command: {spec.command}"[:20_000]
