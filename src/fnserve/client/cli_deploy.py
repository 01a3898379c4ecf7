"""`fnserve deploy` and `fnserve run`: a project uploaded and started as a new version, its progress while it builds
and starts, then its panel (URL, state, token) and a ready-to-paste curl per endpoint."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from fnserve._tracebacks import describe_user_error
from fnserve._units import format_duration
from fnserve.archive import PackedProject
from fnserve.auth import TOKEN_HINT_CHARS, owner_key_path
from fnserve.client.cli_command import (
    CommandOption,
    CommandOptions,
    HealthUriOption,
    InferencePortOption,
    InferenceUrlOption,
    NameOption,
    PublicOption,
    RoutePrefixOption,
    StartupTimeoutOption,
    command_curl,
    command_flags_given,
    command_lines,
    deploy_command_folder,
)
from fnserve.client.cli_common import (
    KeyOption,
    UrlOption,
    connect,
    console,
    errors,
    fail,
    guard,
    human_size,
    json_object,
    require_server,
    user_code_failed,
)
from fnserve.client.cli_envs import BuildFollower, missing_package_target, print_build_event
from fnserve.errors import FnserveError, SpecError

if TYPE_CHECKING:
    from fnserve.client.api import Client
    from fnserve.client.deployment import Deployment
    from fnserve.server import Server

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
    elif info.get("token_withdrawn"):
        lines.append("[bold]Auth[/]      no token yet: the next deploy that starts makes one and shows it")
    elif info.get("auth"):
        lines.append(f"[bold]Auth[/]      a token of this service: `fnserve tokens create {info['name']}`")
    else:
        lines.append("[bold]Auth[/]      none: anyone who can reach the server may call it")
    app = (info.get("api") or {}).get("http_app")
    if app == "command":  # an HTTP server run as a command (docs/COMMANDS.md)
        lines.append(f"[bold]App[/]       command: every path under {info['url']}/ goes to its server")
        lines.extend(command_lines(info))
    elif app is not None:  # an app served whole (docs/APPS.md)
        lines.append(f"[bold]App[/]       {app}: every path under {info['url']}/ (its own docs: {info['url']}/docs)")
    if info["endpoints"]:
        lines.append("[bold]Endpoints[/]")
        for endpoint in info["endpoints"]:
            stream = " (streaming)" if endpoint["streaming"] else ""
            lines.append(f"  {endpoint['method']:6} {endpoint['path']}{stream}")
    return Panel("\n".join(lines), title=f"[bold]{info['name']}[/]", expand=False)


def print_deployment(info: dict[str, Any]) -> None:
    """The panel, then one ready-to-paste curl per endpoint, unwrapped so it copies as one line."""
    console.print(deployment_panel(info))
    curl = command_curl(info, (info.get("token") or "$FNSERVE_TOKEN") if info["auth"] else None)
    if info["state"] == "ACTIVE" and curl is not None:
        console.print("Try it:" if info.get("token") or not info["auth"] else "Try it, with a token in $FNSERVE_TOKEN:")
        console.print(f"  {curl}", soft_wrap=True, highlight=False, markup=False)
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
    packages with uv's own lines printed above it. Piped (no terminal to redraw), one plain line on stderr per
    change instead."""
    deadline = time.monotonic() + timeout_s
    follower = BuildFollower(deployment._client, deployment.name)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"))
    plain = not console.is_terminal
    last_shown = ""
    with Progress(*columns, console=console, transient=True, disable=plain) as progress:
        task = progress.add_task(f"{action} [bold]{deployment.name}[/]", total=None, detail="")
        while True:
            info = deployment.refresh()._info
            build = info.get("build")
            follower.follow(info)
            if info["state"] == "BUILDING" and build is not None:
                total = build["total"] or None
                detail = f"BUILDING, {build['done']}/{total} packages" if total else "BUILDING"
                progress.update(task, total=total, completed=build["done"], detail=escape(build["text"]))
            else:
                detail = f"{info['state']}, {info['replicas_ready']}/{info['replicas_desired']} replicas ready"
                progress.update(task, total=None, detail=detail)
            if plain and detail != last_shown:
                errors.print(f"{action} {deployment.name}: {detail}", highlight=False, markup=False)
                last_shown = detail
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
    """Deploy one `file.py[:service]` and print its panel; returns 0 on ACTIVE, 1 otherwise. The file is imported
    first, so a mistake in it is told before (and whether or not) a server answers."""
    from fnserve.composition.graph import graph_target
    from fnserve.sdk.deploy import deploy_described, deploy_project, deploy_project_graph
    from fnserve.sdk.loader import load_target

    try:
        graph = graph_target(target)
    except Exception:  # a file that does not import: the single-service path below says why, as always
        graph = None
    if graph is not None:  # a service using services given as objects, or an application (.bind): leaves first
        require_server(client)
        deployment = deploy_project_graph(
            graph[0],
            graph[1],
            client=client,
            init_kwargs=init,
            replicas=replicas,
            keep_old=keep_old,
            on_packed=lambda packed: announce_upload(target, graph[1], packed),
            on_level=lambda names: console.print(f"[green]ACTIVE[/] {escape(', '.join(names))}", highlight=False),
        )
        return show_outcome(client, deployment, timeout_s)
    try:
        service, root, entrypoint = load_target(target)
    except FnserveError:
        raise
    except ModuleNotFoundError as exc:
        try:
            path, attribute = missing_package_target(target, exc)
        except ModuleNotFoundError:  # a module of the project itself: a typo in its imports, or a file not there
            raise user_code_failed(exc) from None
        require_server(client)
        console.print(
            f"[yellow]{escape(str(exc.name))} is not installed here[/]: the server reads {escape(path.name)} inside "
            "the service's own environment"
        )
        try:
            deployment = deploy_described(
                path,
                attribute,
                client=client,
                init_kwargs=init,
                replicas=replicas,
                keep_old=keep_old,
                on_event=print_build_event,
                on_packed=lambda packed: announce_upload(path.name, path.resolve().parent, packed),
            )
        except SpecError as spec_error:  # it names no requirements: say where the import is, and what to do
            raise fail(f"{escape(describe_user_error(exc, root=Path.cwd()))}\n{escape(spec_error.message)}") from None
    except Exception as exc:  # a syntax error, or anything its top level raised
        raise user_code_failed(exc) from None
    else:
        require_server(client)
        with console.status(f"Packing [bold]{service.name}[/] from {root}…"):
            deployment = deploy_project(
                service,
                root,
                entrypoint,
                client=client,
                init_kwargs=init,
                replicas=replicas,
                keep_old=keep_old,
                on_packed=lambda packed: announce_upload(service.name, root, packed),
            )
    return show_outcome(client, deployment, timeout_s)


def show_outcome(client: Client, deployment: Deployment, timeout_s: float) -> int:
    """Wait for a deploy with its progress, then print its panel (and why it is not ACTIVE); 0 when it is."""
    wait_with_progress(deployment, timeout_s)
    token = deployment.token
    if token and deployment.state == "ERROR":
        token = None if withdraw_token(client, deployment.name, token) else token
    print_deployment({**deployment._info, "token": token, "token_withdrawn": token is None and bool(deployment.token)})
    if deployment.state == "DISABLED":
        errors.print(
            f"[yellow]{deployment.name} is disabled[/]: version {deployment._info['version']} is registered but not "
            f"started; `fnserve enable {deployment.name}` starts it"
        )
        return 1
    if deployment.state != "ACTIVE":
        logs = deployment._info.get("logs_dir")
        where = f"its replica logs are in {escape(logs)}" if logs else f"`fnserve status {deployment.name}` says why"
        errors.print(f"[red]{deployment.name} is {deployment.state}[/]; {where}", highlight=False, soft_wrap=True)
        return 1
    return 0


def announce_upload(name: str, root: Path, packed: PackedProject) -> None:
    """What a deploy sends, before it sends it: `.gitignore` and `.fnserveignore` decide, so a surprise shows here."""
    files = f"{packed.files} file" + ("" if packed.files == 1 else "s")
    console.print(
        f"Uploading [bold]{escape(name)}[/]: {files}, {human_size(packed.file_bytes)} "
        f"({human_size(packed.size)} zipped) from {escape(str(root))}",
        highlight=False,
        soft_wrap=True,
    )


def withdraw_token(client: Client, name: str, token: str) -> bool:
    """Revoke the token a deploy made for a service that then failed: never shown, it is no use to anyone, and with
    no active token left the next deploy that starts makes (and shows) a new one."""
    try:
        client.revoke_token(name, token[:TOKEN_HINT_CHARS])
    except FnserveError:
        return False
    return True


def deploy(
    target: Annotated[
        str | None,
        typer.Argument(help="app.py[:service] or package.module[:service]; with --command, the project folder (.)"),
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="Override the service's replica count.")] = None,
    init: Annotated[str, typer.Option(help="Initializer keyword arguments as a JSON object.")] = "{}",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE.")] = 120.0,
    keep_old: Annotated[
        bool,
        typer.Option("--keep-old", help="Keep the running versions too (traffic split) instead of replacing them."),
    ] = False,
    command: CommandOption = None,
    name: NameOption = None,
    inference_url: InferenceUrlOption = "/",
    health_uri: HealthUriOption = "/health",
    inference_port: InferencePortOption = None,
    startup_timeout: StartupTimeoutOption = "300s",
    route_prefix: RoutePrefixOption = None,
    public: PublicOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload a service's project folder and start it as a new version; shows progress, then its URL and a curl.

    A service already running keeps serving until the new version is ACTIVE, then drains and stops (blue/green).
    With --command, the folder's own HTTP server is the service: `fnserve deploy --command "python serve.py --port
    {port}" --name NAME --inference-url /v1/completions --health-uri /health` (docs/COMMANDS.md).
    """
    init_kwargs = json_object(init, "--init")
    if command is not None:
        if init_kwargs:
            raise fail("--init is for an initializer; a command service has none (give the command its arguments)")
        options = CommandOptions(
            command=command,
            name=name,
            inference_url=inference_url,
            health_uri=health_uri,
            inference_port=inference_port,
            startup_timeout=startup_timeout,
            route_prefix=route_prefix,
            public=public,
        )
        folder = Path(target or ".")
        with connect(url, api_key) as client:
            raise typer.Exit(
                guard(
                    lambda: deploy_command_folder(
                        client, folder, options, replicas=replicas, timeout_s=timeout, keep_old=keep_old
                    )
                )
            )
    unused = [flag for flag, given in command_flags_given(name, inference_port, route_prefix, public) if given]
    if unused:
        raise fail(f"{', '.join(unused)} go with --command; a service's file declares its own options")
    if target is None:
        raise fail("give the service to deploy: fnserve deploy app.py[:service] (or --command for an HTTP server)")
    chosen = target
    with connect(url, api_key) as client:  # the server is asked for once the file imports: mistakes first
        raise typer.Exit(
            guard(
                lambda: deploy_target(
                    client, chosen, replicas=replicas, init=init_kwargs, timeout_s=timeout, keep_old=keep_old
                )
            )
        )
