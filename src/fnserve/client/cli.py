"""The `fnserve` command line: daily verbs at the top (server, deploy, ls, invoke, teardown, run), noun groups for
the rest (`tokens`, `jobs`, `assets`)."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn
from rich.table import Table

from fnserve._loop import run as run_on_uvloop
from fnserve._units import format_duration
from fnserve.auth import owner_key_path
from fnserve.client.cli_common import (
    AssetOption,
    KeyOption,
    UrlOption,
    connect,
    console,
    errors,
    fail,
    guard,
    human_size,
    require_server,
)
from fnserve.client.cli_envs import BuildFollower, build_log, env_app, missing_package_target, print_build_event
from fnserve.client.cli_models import deploy_model
from fnserve.errors import FnserveError
from fnserve.settings import Settings

if TYPE_CHECKING:
    from fnserve.client.api import Client
    from fnserve.client.deployment import Deployment
    from fnserve.server import Server

app = typer.Typer(
    name="fnserve",
    help="Turn Python functions and classes into live HTTP services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_SAMPLE_VALUES: dict[str, Any] = {"str": "text", "int": 1, "float": 1.0, "bool": True, "list": [], "dict": {}}


def sample_body(endpoint: dict[str, Any], api: dict[str, Any] | None) -> dict[str, Any]:
    """Arguments for a ready-to-paste curl: the required parameters, with a placeholder of their type."""
    if not api:
        return {}
    paths = api["paths"]
    # The API description keys a path by itself, or by "METHOD /path" when another method came first.
    described = paths.get(f"{endpoint['method']} {endpoint['path']}") or paths.get(endpoint["path"], {})
    body = {}
    for name, parameter in described.get("parameters", {}).items():
        if parameter["default"] is None and not parameter["auto"] and f"{{{name}}}" not in endpoint["path"]:
            body[name] = _SAMPLE_VALUES.get(parameter["type"].split("[")[0], "value")
    return body


def curl_for(endpoint: dict[str, Any], api: dict[str, Any] | None, auth: str | None = None) -> str:
    """A curl command for one endpoint; `auth` is the token to send (or a shell variable naming one)."""
    url = endpoint["url"]
    for part in endpoint["path"].split("/"):
        if part.startswith("{"):  # a placeholder value the user edits
            url = url.replace(part, "1")
    flags = "-N " if endpoint["streaming"] else ""
    if auth:
        flags += f'-H "authorization: Bearer {auth}" '
    if endpoint["method"] in ("GET", "DELETE"):
        return f"curl {flags}-X {endpoint['method']} {url}"
    body = orjson.dumps(sample_body(endpoint, api)).decode()
    return f"curl {flags}-X {endpoint['method']} {url} -H 'content-type: application/json' -d '{body}'"


def time_left(info: dict[str, Any]) -> str:
    """A service's time left before its time_limit tears it down, e.g. `1h 59m (until 2025-01-31 14:00:00 UTC)`."""
    if info.get("time_left_s") is None:
        return ""
    until = datetime.fromisoformat(info["expires_at"]).astimezone(UTC)
    return f"{format_duration(info['time_left_s'])} (until {until:%Y-%m-%d %H:%M:%S} UTC)"


def deployment_panel(info: dict[str, Any]) -> Panel:
    state_style = {"ACTIVE": "green", "ERROR": "red", "DEPLOYING": "yellow", "DISABLED": "magenta"}.get(
        info["state"], "white"
    )
    lines = [
        f"[bold]URL[/]       {info['url']}",
        f"[bold]State[/]     [{state_style}]{info['state']}[/]  ({info['replicas_ready']}/{info['replicas_desired']}"
        " replicas ready)",
        f"[bold]Id[/]        {info['service_id']}",
    ]
    if info.get("reason"):
        lines.append(f"[bold]Reason[/]    [red]{escape(info['reason'])}[/]")
    if info.get("time_left_s") is not None:
        lines.append(f"[bold]Time left[/] {time_left(info)}")
    if info.get("token"):
        lines.append(f"[bold]Token[/]     {info['token']}  [dim](shown once: keep it)[/]")
    elif info.get("auth"):
        lines.append(f"[bold]Auth[/]      a token of this service: `fnserve tokens create {info['name']}`")
    else:
        lines.append("[bold]Auth[/]      none: anyone who can reach the server may call it")
    if info["endpoints"]:
        lines.append("[bold]Endpoints[/]")
        for endpoint in info["endpoints"]:
            stream = " (streaming)" if endpoint["streaming"] else ""
            lines.append(f"  {endpoint['method']:6} {endpoint['path']}{stream}")
    return Panel("\n".join(lines), title=f"[bold]{info['name']}[/]", expand=False)


def print_deployment(info: dict[str, Any]) -> None:
    """The panel, then one ready-to-paste curl per endpoint, unwrapped so it copies as one line."""
    console.print(deployment_panel(info))
    if info["state"] == "ACTIVE" and info["endpoints"]:
        console.print("Try it:" if info.get("token") or not info["auth"] else "Try it, with a token in $FNSERVE_TOKEN:")
        auth = (info.get("token") or "$FNSERVE_TOKEN") if info["auth"] else None
        for endpoint in info["endpoints"]:
            command = curl_for(endpoint, info.get("api"), auth)
            console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)


def announce_owner_key(app: Server) -> None:
    """Show a new owner key once: it is saved for this machine's CLI and clients, and printed nowhere else."""
    if app.owner_key_created:
        console.print(
            Panel(
                f"{app.owner_key}\n\n[dim]Saved to {owner_key_path(app.settings.home)} (mode 0600): the CLI and the "
                "Python client on this machine use it. Elsewhere, pass it as --api-key or FNSERVE_API_KEY.[/]",
                title="[bold]Owner API key[/] (shown once)",
                expand=False,
            ),
            soft_wrap=True,
        )


def wait_with_progress(deployment: Deployment, timeout_s: float, action: str = "Deploying") -> Deployment:
    """Poll until ACTIVE, ERROR or INACTIVE: a spinner with the state, and while the environment builds, a bar of its
    packages with uv's own lines printed above it."""

    deadline = time.monotonic() + timeout_s
    follower = BuildFollower(deployment._client, deployment.name)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{action} [bold]{deployment.name}[/]", total=None, detail="")
        while True:
            info = deployment.refresh()._info
            build = info.get("build")
            follower.follow(info)
            if info["state"] == "BUILDING" and build is not None:
                total = build["total"] or None
                detail = escape(build["text"])
                progress.update(task, total=total, completed=build["done"], detail=detail)
            else:
                ready = f"{info['replicas_ready']}/{info['replicas_desired']} replicas ready"
                progress.update(task, total=None, detail=f"{info['state']}, {ready}")
            if info["state"] in ("ACTIVE", "ERROR", "INACTIVE", "DISABLED") or time.monotonic() > deadline:
                return deployment
            time.sleep(0.05)


def deploy_target(
    client: Client,
    target: str,
    *,
    replicas: int | None,
    init: dict[str, Any],
    timeout_s: float,
    keep_old: bool = False,
) -> int:
    """Deploy one `file.py[:service]` and print its panel; returns 0 on ACTIVE, 1 otherwise."""
    from fnserve.sdk.deploy import deploy_described, deploy_project
    from fnserve.sdk.loader import load_target

    try:
        service, root, entrypoint = load_target(target)
    except ModuleNotFoundError as exc:
        path, attribute = missing_package_target(target, exc)
        console.print(
            f"[yellow]{escape(str(exc.name))} is not installed here[/]: the server reads {escape(path.name)} inside "
            "the service's own environment"
        )
        deployment = deploy_described(
            path,
            attribute,
            client=client,
            init_kwargs=init,
            replicas=replicas,
            keep_old=keep_old,
            on_event=print_build_event,
        )
    else:
        with console.status(f"Uploading [bold]{service.name}[/] from {root}…"):
            deployment = deploy_project(
                service, root, entrypoint, client=client, init_kwargs=init, replicas=replicas, keep_old=keep_old
            )
    wait_with_progress(deployment, timeout_s)
    print_deployment({**deployment._info, "token": deployment.token})
    if deployment.state == "DISABLED":
        errors.print(
            f"[yellow]{service.name} is disabled[/]: version {deployment._info['version']} is registered but not "
            f"started; `fnserve enable {service.name}` starts it"
        )
        return 1
    if deployment.state != "ACTIVE":
        errors.print(f"[red]{deployment.name} is {deployment.state}[/]; its replica logs are under $FNSERVE_HOME/logs")
        return 1
    return 0


def server_failed(exc: FnserveError) -> typer.Exit:
    """A server that cannot start says why in one line (not wrapped: it often goes to a log)."""
    errors.print(f"[bold red]Error:[/] {escape(exc.message)}", soft_wrap=True)
    return typer.Exit(1)


@app.command()
def server(
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    home: Annotated[Path | None, typer.Option(help="State folder [default: $FNSERVE_HOME or ~/.fnserve].")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL [default: SQLite file in the home folder].")] = None,
    dev: Annotated[
        bool | None,
        typer.Option(
            "--dev/--no-dev",
            help="Accept pickled code and arguments from clients (fs.deploy from a notebook) [default: on when "
            "listening on loopback only; refused otherwise].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the server: gateway, control plane and replicas, in the foreground."""
    from fnserve.server import serve

    settings = Settings.from_env(host=host, port=port, home=home, db_url=db, dev=dev)
    try:
        settings.check()
    except ValueError as exc:
        raise fail(str(exc)) from None

    def ready(url: str, app: Server) -> None:
        console.print(f"fnserve server on [bold]{url}[/] (state in {settings.home}); Ctrl-C stops it")
        announce_owner_key(app)

    try:
        run_on_uvloop(serve(settings, on_ready=ready, log_level="info"))
    except FnserveError as exc:  # another server holds the home (HomeInUse), or it cannot be written
        raise server_failed(exc) from None


@app.command()
def deploy(
    target: Annotated[str, typer.Argument(help="app.py[:service] or package.module[:service]")],
    replicas: Annotated[int | None, typer.Option(help="Override the service's replica count.")] = None,
    init: Annotated[str, typer.Option(help="Initializer keyword arguments as a JSON object.")] = "{}",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE.")] = 120.0,
    keep_old: Annotated[
        bool,
        typer.Option("--keep-old", help="Keep the running versions too (traffic split) instead of replacing them."),
    ] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload a service's project folder and start it as a new version; shows progress, then its URL and a curl.

    A service already running keeps serving until the new version is ACTIVE, then drains and stops (blue/green).
    """
    init_kwargs = _json_object(init, "--init")
    with connect(url, api_key) as client:
        require_server(client)
        raise typer.Exit(
            guard(
                lambda: deploy_target(
                    client, target, replicas=replicas, init=init_kwargs, timeout_s=timeout, keep_old=keep_old
                )
            )
        )


@app.command("ls")
def list_services(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List services with their state, replicas and URL."""
    with connect(url, api_key) as client:
        require_server(client)
        services = guard(client.list_services)
    table = Table("NAME", "STATE", "REPLICAS", "URL", "ENDPOINTS")
    limited = any(info.get("time_left_s") is not None for info in services)
    if limited:  # only then: most services have no time limit
        table.add_column("TIME LEFT")
    for info in services:
        row = [
            info["name"],
            info["state"],
            f"{info['replicas_ready']}/{info['replicas_desired']}",
            info["url"],
            ", ".join(f"{e['method']} {e['path']}" for e in info["endpoints"]),
        ]
        if limited:
            row.append("" if info.get("time_left_s") is None else format_duration(info["time_left_s"]))
        table.add_row(*row)
    console.print(table if services else "No services yet; deploy one with `fnserve deploy app.py`")
    for info in services:
        if info["state"] == "ERROR" and info.get("reason"):
            errors.print(f"[red]{info['name']}[/]: {escape(info['reason'])}", highlight=False)


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="The service name.")],
    path: Annotated[str, typer.Argument(help="The endpoint path, e.g. /hello.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Arguments as a JSON object.")] = "{}",
    method: Annotated[str | None, typer.Option("--method", "-X", help="HTTP method [default: the route's].")] = None,
    asset: AssetOption = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Call an endpoint and print the result (streaming routes print chunks as they arrive)."""
    arguments = _json_object(data, "--data")
    with connect(url, api_key) as client:
        require_server(client)
        from fnserve.client.deployment import Deployment

        deployment = Deployment(client, guard(lambda: client.get_service(name)))
        routes = [e for e in deployment.endpoints.values() if _matches(e["path"], path)]
        chosen = method.upper() if method else (routes[0]["method"] if routes else "POST")
        streaming = any(e["streaming"] and e["method"] == chosen for e in routes)

        def run() -> None:
            if streaming:
                for chunk in client.stream(deployment._info["route_prefix"], path, chosen, arguments):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                sys.stdout.write("\n")
            else:
                result = client.invoke(deployment._info["route_prefix"], path, chosen, arguments, assets=asset)
                print_result(result)

        guard(run)


@app.command()
def versions(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List a service's versions with their states, traffic weights and ready replicas."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.get_service(name))
    console.print(versions_table(info))


@app.command()
def rollback(
    name: str,
    to: Annotated[int | None, typer.Option("--to", help="The version to serve [default: the previous one].")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE.")] = 120.0,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Serve an earlier version again; the current one drains once it is ACTIVE (blue/green)."""
    with connect(url, api_key) as client:
        require_server(client)
        from fnserve.client.deployment import Deployment

        deployment = Deployment(client, guard(lambda: client.rollback(name, to)))
        wait_with_progress(deployment, timeout)
        print_deployment(deployment._info)
    raise typer.Exit(0 if deployment.state == "ACTIVE" else 1)


@app.command()
def status(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """A service's versions, replicas, states and reasons."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.get_service(name))
    print_deployment(info)
    console.print(versions_table(info))
    replicas = Table(
        "REPLICA", "STATE", "PID", "IN FLIGHT", "COLD START", "REASON", title=f"Replicas of version {info['version']}"
    )
    for replica in info["replicas"]:
        cold_start_ms = replica.get("cold_start_ms")
        replicas.add_row(
            replica["replica_id"],
            replica["state"],
            str(replica["pid"]),
            str(replica["in_flight"]),
            "" if cold_start_ms is None else f"{cold_start_ms:.0f} ms",
            escape(replica["reason"] or ""),
        )
    console.print(replicas)
    if info.get("failed_replicas"):
        failed = Table("REPLICA", "PID", "EXIT CODE", "REASON", title="Replicas that failed lately (newest first)")
        for replica in info["failed_replicas"]:
            failed.add_row(
                replica["replica_id"], str(replica["pid"]), str(replica["exit_code"]), escape(replica["reason"] or "")
            )
        console.print(failed)


def versions_table(info: dict[str, Any]) -> Table:
    table = Table("VERSION", "ID", "STATE", "WEIGHT", "READY", title=f"Versions of {info['name']}")
    for version in info["versions"]:
        current = " (current)" if version["version"] == info["version"] else ""
        weight = "" if version["weight"] is None else str(version["weight"])
        table.add_row(
            f"{version['version']}{current}",
            version["version_id"],
            version["state"],
            weight,
            str(version["replicas_ready"]),
        )
    return table


@app.command()
def teardown(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Stop a service (calls in progress finish first); it stays listed as INACTIVE."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.teardown(name))
    console.print(f"[bold]{info['name']}[/] is {info['state']}")


@app.command()
def disable(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Stop a service's replicas (calls in progress finish first) and refuse its calls until `fnserve enable`; it
    keeps its versions, tokens and queued jobs, across server restarts too."""
    with connect(url, api_key) as client:
        require_server(client)
        with console.status(f"Disabling [bold]{escape(name)}[/]: its replicas drain…"):
            info = guard(lambda: client.disable(name))
    console.print(
        f"[bold]{info['name']}[/] is {info['state']}: no replica runs, and its calls answer 503 service_disabled; "
        f"`fnserve enable {info['name']}` starts it again"
    )


@app.command()
def enable(
    name: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE.")] = 120.0,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Start a disabled service again as it was (same versions, replicas and autoscaling); shows progress, then
    its panel."""
    with connect(url, api_key) as client:
        require_server(client)
        from fnserve.client.deployment import Deployment

        deployment = Deployment(client, guard(lambda: client.enable(name)))
        wait_with_progress(deployment, timeout, action="Enabling")
        print_deployment(deployment._info)
    raise typer.Exit(0 if deployment.state == "ACTIVE" else 1)


tokens_app = typer.Typer(help="Invocation tokens: each lets its holder call one service, and nothing else.")
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    name: str,
    label: Annotated[str, typer.Option(help="A note to tell tokens apart, e.g. 'web frontend'.")] = "",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Make a token for NAME and print it; it is stored hashed, so this is the only time it is shown."""
    with connect(url, api_key) as client:
        require_server(client)
        token = guard(lambda: client.create_token(name, label))
    console.print(
        Panel(
            f"{token['token']}\n\n[dim]Send it as 'Authorization: Bearer <token>' or 'x-api-key: <token>'. "
            f"Revoke it with `fnserve tokens revoke {token['service']} {token['token_id']}`.[/]",
            title=f"[bold]Token for {escape(token['service'])}[/] (shown once)",
            expand=False,
        ),
        soft_wrap=True,
    )


@tokens_app.command("ls")
def tokens_list(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List NAME's tokens (id, hint, label, state); never their secrets."""
    with connect(url, api_key) as client:
        require_server(client)
        tokens = guard(lambda: client.list_tokens(name))
    if not tokens:
        console.print(f"{escape(name)} has no tokens; make one with `fnserve tokens create {escape(name)}`")
        return
    table = Table("token id", "hint", "label", "state", "created")
    for token in tokens:
        state = "[green]active[/]" if token["active"] else f"[dim]revoked {token['revoked_at'][:19]}[/]"
        table.add_row(token["token_id"], token["hint"] + "…", escape(token["label"]), state, token["created_at"][:19])
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    name: str,
    token: Annotated[str, typer.Argument(help="The token id (or its hint) from `fnserve tokens ls`.")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Revoke one of NAME's tokens: it stops working at once."""
    with connect(url, api_key) as client:
        require_server(client)
        revoked = guard(lambda: client.revoke_token(name, token))
    console.print(f"Token {revoked['token_id']} ({revoked['hint']}…) of [bold]{revoked['service']}[/] is revoked")


def print_result(result: Any) -> None:
    """An endpoint's result: JSON, or the raw bytes of a large result that is not JSON."""
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    else:
        console.print_json(orjson.dumps(result).decode())


jobs_app = typer.Typer(help="Queued jobs: submit a call, follow it, cancel or retry it (docs/JOBS.md).")
app.add_typer(jobs_app, name="jobs")

_STATUS_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMED_OUT": "red",
    "CANCELLED": "yellow",
    "IN_PROGRESS": "cyan",
}
_SHOWN_OUTPUT_CHARS = 4000


def _when(value: str | float | None) -> str:
    """A timestamp as `2026-11-22 10:00:00` (UTC), from ISO text or epoch seconds."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")


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
        times = [f"created {_when(job['created_at'])}"]
        times += [f"{key} {_when(job[f'{key}_at'])[11:]}" for key in ("started", "finished") if job.get(f"{key}_at")]
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
    return str(guard(lambda: client.get_service(name))["route_prefix"])


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(orjson.dumps(job).decode())
    else:
        console.print(job_panel(job))


JsonOption = Annotated[bool, typer.Option("--json", help="Print the job as JSON.")]


@jobs_app.command("submit")
def jobs_submit(
    name: Annotated[str, typer.Argument(help="The service name.")],
    path: Annotated[str, typer.Argument(help="The endpoint path, e.g. /hello or /users/7.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Arguments as a JSON object.")] = "{}",
    method: Annotated[str | None, typer.Option("--method", "-X", help="HTTP method [default: the route's].")] = None,
    asset: AssetOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish and show it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 600.0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Queue a call as a job and print its id; with --wait, then the finished job (exit 1 unless COMPLETED)."""
    from fnserve.client.jobs import FINISHED, Job

    arguments = _json_object(data, "--data")
    with connect(url, api_key) as client:
        require_server(client)
        service = guard(lambda: client.get_service(name))
        routes = [e for e in service["endpoints"] if _matches(e["path"], path)]
        chosen = method.upper() if method else (routes[0]["method"] if routes else "POST")
        queued = guard(lambda: client.submit(service["route_prefix"], path, chosen, arguments, assets=asset))
        if not wait:
            console.print(queued["id"], highlight=False, soft_wrap=True)
            return
        if not as_json:
            console.print(queued["id"], highlight=False, soft_wrap=True)
        job = Job(client, service["route_prefix"], queued["id"], queued)
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
    as_json: JsonOption = False,
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
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List jobs, newest first."""
    with connect(url, api_key) as client:
        require_server(client)
        jobs = guard(lambda: client.list_jobs(service=name, status=status, limit=limit))
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
            _when(job.get("created_at")),
            _milliseconds(job.get("delay_ms")),
            _milliseconds(job.get("execution_ms")),
        )
    console.print(table)


app.add_typer(env_app, name="env")
app.command("build-log")(build_log)
app.command("deploy-model")(deploy_model)

assets_app = typer.Typer(help="Assets: files uploaded once, then named by id in calls (`--asset ID`).")
app.add_typer(assets_app, name="assets")

_PROGRESS_FROM_BYTES = 1024 * 1024


@assets_app.command("upload")
def assets_upload(
    file: Annotated[Path, typer.Argument(help="The file to upload.", exists=True, dir_okay=False, readable=True)],
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Its media type [default: guessed from the name].")
    ] = None,
    description: Annotated[str, typer.Option(help="A note shown by `fnserve assets ls`.")] = "",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload a file (streamed, with a progress bar for large ones) and print its asset id."""
    size = file.stat().st_size
    with connect(url, api_key) as client:
        require_server(client)
        if size < _PROGRESS_FROM_BYTES:
            asset = guard(lambda: client.upload_asset(file, content_type, description))
        else:
            columns = (BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn())
            with Progress(*Progress.get_default_columns()[:1], *columns, console=errors, transient=True) as progress:
                task = progress.add_task(f"Uploading {escape(file.name)}", total=size)
                asset = guard(
                    lambda: client.upload_asset(
                        file, content_type, description, on_progress=lambda sent: progress.advance(task, sent)
                    )
                )
    console.print(
        f"{asset['asset_id']}  [dim]{escape(file.name)}, {human_size(asset.get('size'))}, "
        f"sha256 {str(asset.get('sha256', ''))[:16]}…[/]",
        highlight=False,
        soft_wrap=True,
    )


@assets_app.command("ls")
def assets_list(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List the assets this key may use."""
    with connect(url, api_key) as client:
        require_server(client)
        assets = guard(client.list_assets)
    if not assets:
        console.print("No assets yet; upload one with `fnserve assets upload FILE`")
        return
    table = Table("ID", "KIND", "STATE", "SIZE", "TYPE", "DESCRIPTION", "CREATED")
    for asset in assets:
        table.add_row(
            asset["asset_id"],
            str(asset.get("kind", "")),
            str(asset.get("state", "")),
            human_size(asset.get("size")),
            escape(str(asset.get("content_type", ""))),
            escape(str(asset.get("description", ""))),
            _when(asset.get("created_at")),
        )
    console.print(table)


@assets_app.command("download")
def assets_download(
    asset_id: Annotated[str, typer.Argument(help="The asset id (ast-…).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write it [default: stdout].")] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Download an asset's bytes (an upload, or a job's result over the inline limit)."""
    with connect(url, api_key) as client:
        require_server(client)
        if output is None:
            data = guard(lambda: client.download_asset(asset_id))
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        written = guard(lambda: client.download_asset(asset_id, output))
    errors.print(f"Wrote {asset_id} to {escape(str(written))}", highlight=False)


@assets_app.command("rm")
def assets_remove(
    asset_id: Annotated[str, typer.Argument(help="The asset id (ast-…).")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Delete an asset; calls naming it afterwards fail with asset_not_found."""
    with connect(url, api_key) as client:
        require_server(client)
        guard(lambda: client.delete_asset(asset_id))
    console.print(f"Asset {asset_id} is deleted", highlight=False)


@app.command()
def info(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """What a service says of itself: start date, up time, initializer arguments and API, as JSON."""
    with connect(url, api_key) as client:
        require_server(client)
        service = guard(lambda: client.get_service(name))
        described = guard(lambda: client.service_info(service["route_prefix"]))
    console.print_json(orjson.dumps(described).decode())


@app.command()
def run(
    targets: Annotated[list[str], typer.Argument(help="One or more app.py[:service] to deploy.")],
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
    home: Annotated[Path | None, typer.Option(help="State folder [default: $FNSERVE_HOME or ~/.fnserve].")] = None,
) -> None:
    """Start a server and deploy the targets in one go, in the foreground; Ctrl-C stops everything."""
    from fnserve.server import serve

    settings = Settings.from_env(host=host, port=port, home=home)

    async def deploy_all(server_url: str, app: Server) -> None:
        console.print(f"fnserve server on [bold]{server_url}[/] (state in {settings.home})")
        announce_owner_key(app)

        def work() -> None:
            with connect(server_url, None) as client:
                for target in targets:
                    try:
                        deploy_target(client, target, replicas=None, init={}, timeout_s=120.0)
                    except FnserveError as exc:
                        errors.print(f"[red]{escape(target)}: {escape(exc.message)}[/]")
            console.print("Serving; press [bold]Ctrl-C[/] to stop the server and its replicas.")

        await asyncio.to_thread(work)

    try:
        run_on_uvloop(serve(settings, on_ready=deploy_all))
    except FnserveError as exc:
        raise server_failed(exc) from None


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    hidden=True,
)
def worker(ctx: typer.Context) -> None:
    """Run one replica (started by the server; see `python -m fnserve.runtime.worker --help`)."""
    from fnserve.runtime.worker import main as worker_main

    worker_main(list(ctx.args))


def _json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise fail(f"{flag} is not valid JSON ({exc}); for example {flag} '{{\"x\": 1}}'") from None
    if not isinstance(value, dict):
        raise fail(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def _matches(template: str, path: str) -> bool:
    parts, actual = template.split("/"), path.split("/")
    return len(parts) == len(actual) and all(p == a or p.startswith("{") for p, a in zip(parts, actual, strict=True))


def main() -> None:
    app()
