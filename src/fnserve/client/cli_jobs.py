"""`fnserve jobs ...`: queue a call as a job, follow it, cancel or retry it, list jobs (docs/JOBS.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from fnserve.client.cli_common import (
    AssetOption,
    JsonOption,
    KeyOption,
    UrlOption,
    connect,
    console,
    errors,
    guard,
    json_object,
    matches_route,
    print_json,
    require_server,
    when,
)

if TYPE_CHECKING:
    from fnserve.client.api import Client

jobs_app = typer.Typer(help="Queued jobs: submit a call, follow it, cancel or retry it (docs/JOBS.md).")

_STATUS_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMED_OUT": "red",
    "CANCELLED": "yellow",
    "IN_PROGRESS": "cyan",
}
_SHOWN_OUTPUT_CHARS = 4000


def _milliseconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _status(status: str) -> str:
    style = _STATUS_STYLES.get(status)
    return f"[{style}]{status}[/]" if style else status


def job_panel(job: dict[str, Any]) -> Panel:
    """A job as `fnserve jobs get` shows it: status, where and when it ran, then its output or error."""
    lines = [f"[bold]Status[/]     {_status(job['status'])}"]
    if job.get("service"):
        version = f" (version {job['version']})" if job.get("version") is not None else ""
        lines.append(f"[bold]Service[/]    {escape(job['service'])}{version}")
    if job.get("endpoint"):
        lines.append(f"[bold]Endpoint[/]   {escape(job['endpoint'])}")
    if job.get("attempt") is not None:
        retried = f", retried {job['retried']}" if job.get("retried") else ""
        lines.append(f"[bold]Attempt[/]    {job['attempt']} of {job.get('max_attempts', '?')}{retried}")
    if job.get("created_at"):
        times = [f"created {when(job['created_at'])}"]
        times += [f"{key} {when(job[f'{key}_at'])[11:]}" for key in ("started", "finished") if job.get(f"{key}_at")]
        lines.append(f"[bold]Times[/]      {', '.join(times)} UTC")
    if job.get("delay_ms") is not None or job.get("execution_ms") is not None:
        queued, running = _milliseconds(job.get("delay_ms")) or "0", _milliseconds(job.get("execution_ms")) or "0"
        lines.append(f"[bold]Took[/]       {queued} ms queued, {running} ms running")
    if job.get("reason"):
        lines.append(f"[bold]Waiting[/]    {escape(str(job['reason']))}")
    if job.get("error"):
        error = job["error"]
        lines.append(f"[bold]Error[/]      [red]{escape(str(error.get('message')))}[/] [dim]({error.get('code')})[/]")
    if job.get("output_url"):
        asset_id = job["output_url"].rstrip("/").removesuffix("/content").rsplit("/", 1)[-1]
        lines.append(
            f"[bold]Output[/]     over the inline limit; download it with `fnserve assets download {escape(asset_id)}`"
        )
    elif job["status"] == "COMPLETED":
        shown = orjson.dumps(job.get("output"), option=orjson.OPT_INDENT_2).decode()
        if len(shown) > _SHOWN_OUTPUT_CHARS:
            shown = shown[:_SHOWN_OUTPUT_CHARS] + f"\n… ({len(shown)} characters; `--json` shows it all)"
        lines.append(f"[bold]Output[/]\n{escape(shown)}")
    return Panel("\n".join(lines), title=f"[bold]Job {escape(job['id'])}[/]", expand=False)


def _route_prefix(client: Client, name: str) -> str:
    """Where the service's job paths are (under `/-` for a command service)."""
    from fnserve.client.api import jobs_prefix

    return jobs_prefix(guard(lambda: client.get_service(name)))


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(orjson.dumps(job).decode())
    else:
        console.print(job_panel(job))


JobJsonOption = Annotated[bool, typer.Option("--json", help="Print the job as JSON.")]


@jobs_app.command("submit")
def jobs_submit(
    name: Annotated[str, typer.Argument(help="The service name.")],
    path: Annotated[str, typer.Argument(help="The endpoint path, e.g. /hello or /users/7.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Arguments as a JSON object.")] = "{}",
    method: Annotated[
        str | None, typer.Option("--method", "-X", help="HTTP method.", show_default="the route's")
    ] = None,
    asset: AssetOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish and show it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 600.0,
    as_json: JobJsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Queue a call as a job and print its id; with --wait, then the finished job (exit 1 unless COMPLETED)."""
    from fnserve.client.api import jobs_prefix
    from fnserve.client.jobs import FINISHED, Job

    arguments = json_object(data, "--data")
    with connect(url, api_key) as client:
        require_server(client)
        service = guard(lambda: client.get_service(name))
        routes = [e for e in service["endpoints"] if matches_route(e["path"], path)]
        chosen = method.upper() if method else (routes[0]["method"] if routes else "POST")
        prefix = jobs_prefix(service)
        queued = guard(lambda: client.submit(prefix, path, chosen, arguments, assets=asset))
        if not wait:
            console.print(queued["id"], highlight=False, soft_wrap=True)
            return
        if not as_json:
            console.print(queued["id"], highlight=False, soft_wrap=True)
        job = Job(client, prefix, queued["id"], queued)
        with console.status(f"Waiting for job {queued['id']}…"):
            finished = guard(lambda: job.wait(timeout))
    _print_job(finished, as_json)
    if finished["status"] not in FINISHED:
        errors.print(f"[yellow]Job {finished['id']} is still {finished['status']} after {timeout:g} s[/]")
    raise typer.Exit(0 if finished["status"] == "COMPLETED" else 1)


@jobs_app.command("get")
def jobs_get(
    name: Annotated[str, typer.Argument(help="The service name.")],
    job_id: Annotated[str, typer.Argument(help="The job id (job-…).")],
    wait: Annotated[float, typer.Option("--wait", help="Wait up to this many seconds for it to finish.")] = 0.0,
    as_json: JobJsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Show a job: status, attempts, timings, and its output or error."""
    from fnserve.client.jobs import Job

    with connect(url, api_key) as client:
        require_server(client)
        job = Job(client, _route_prefix(client, name), job_id)
        info = guard(lambda: job.wait(wait) if wait > 0 else job.info())
    _print_job(info, as_json)


@jobs_app.command("cancel")
def jobs_cancel(
    name: Annotated[str, typer.Argument(help="The service name.")],
    job_id: Annotated[str, typer.Argument(help="The job id (job-…).")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Cancel a queued or running job (a finished one cannot be: job_conflict)."""
    _change_job(name, job_id, "cancel", url, api_key)


@jobs_app.command("retry")
def jobs_retry(
    name: Annotated[str, typer.Argument(help="The service name.")],
    job_id: Annotated[str, typer.Argument(help="The job id (job-…).")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Queue a FAILED or TIMED_OUT job again."""
    _change_job(name, job_id, "retry", url, api_key)


def _change_job(name: str, job_id: str, action: str, url: str | None, api_key: str | None) -> None:
    with connect(url, api_key) as client:
        require_server(client)
        prefix = _route_prefix(client, name)
        change = client.cancel_job if action == "cancel" else client.retry_job
        job = guard(lambda: change(prefix, job_id))
    console.print(f"Job {job['id']} is {_status(job['status'])}", highlight=False)


@jobs_app.command("ls")
def jobs_list(
    name: Annotated[str | None, typer.Argument(help="Only this service's jobs.")] = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status, e.g. FAILED or IN_QUEUE.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List jobs, newest first."""
    with connect(url, api_key) as client:
        require_server(client)
        jobs = guard(lambda: client.list_jobs(service=name, status=status, limit=limit))
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        console.print(
            "No " + (f"{status.upper()} " if status else "") + "jobs" + (f" of {escape(name)}" if name else "")
        )
        return
    table = Table("ID", "SERVICE", "ENDPOINT", "STATUS", "ATTEMPT", "CREATED", "DELAY MS", "EXEC MS")
    for job in jobs:
        table.add_row(
            job["id"],
            escape(str(job.get("service", ""))),
            escape(str(job.get("endpoint", ""))),
            _status(job["status"]),
            f"{job.get('attempt', 0)}/{job.get('max_attempts', '?')}",
            when(job.get("created_at")),
            _milliseconds(job.get("delay_ms")),
            _milliseconds(job.get("execution_ms")),
        )
    console.print(table)
