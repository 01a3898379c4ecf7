"""The `fnserve` command line: daily verbs at the top (server, deploy, ls, invoke, teardown, run), noun groups for
the rest (`tokens`, `jobs`, `assets`)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Column, Table

from fnserve._units import format_duration
from fnserve.client.cli_assets import assets_app
from fnserve.client.cli_common import (
    AssetOption,
    JsonOption,
    KeyOption,
    NameArgument,
    UrlOption,
    connect,
    console,
    errors,
    fail,
    guard,
    json_object,
    listen,
    matches_route,
    print_json,
    require_server,
    run_server,
    state,
)
from fnserve.client.cli_deploy import announce_owner_key, deploy, print_deployment, wait_with_progress
from fnserve.client.cli_envs import build_log, env_app
from fnserve.client.cli_jobs import jobs_app
from fnserve.client.cli_models import deploy_model
from fnserve.client.cli_run import run
from fnserve.responses import Response
from fnserve.settings import Settings

if TYPE_CHECKING:
    from fnserve.server import Server

app = typer.Typer(
    name="fnserve",
    help="Turn Python functions and classes into live HTTP services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"fnserve {version('fnserve')}", highlight=False)
        raise typer.Exit()


@app.callback()
def root_options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print fnserve's version and exit.", callback=_print_version, is_eager=True),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="FNSERVE_DEBUG",
            help="Show whole tracebacks (importlib's, fnserve's) where a mistake in your code is otherwise one line.",
        ),
    ] = False,
) -> None:
    """Turn Python functions and classes into live HTTP services."""
    state.debug = debug


@app.command()
def server(
    host: Annotated[str | None, typer.Option(help="Interface to bind.", show_default="127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Port.", show_default="8000")] = None,
    home: Annotated[Path | None, typer.Option(help="State folder.", show_default="$FNSERVE_HOME or ~/.fnserve")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL.", show_default="SQLite file in the home folder")] = None,
    dev: Annotated[
        bool | None,
        typer.Option(
            "--dev/--no-dev",
            help="Accept pickled code and arguments from clients (fs.deploy from a notebook); refused unless the "
            "server listens on loopback only.",
            show_default="on when listening on loopback only",
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
    sock = listen(settings)

    def ready(url: str, app: Server) -> None:
        console.print(f"fnserve server on [bold]{url}[/] (state in {settings.home}); Ctrl-C stops it")
        announce_owner_key(app)

    run_server(serve(settings, sock=sock, on_ready=ready, log_level="info"))


app.command()(deploy)


@app.command("ls")
def list_services(as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List services with their state, replicas and URL."""
    with connect(url, api_key) as client:
        require_server(client)
        services = guard(client.list_services)
    if as_json:
        print_json(services)
        return
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
    method: Annotated[
        str | None, typer.Option("--method", "-X", help="HTTP method.", show_default="the route's")
    ] = None,
    asset: AssetOption = None,
    form: Annotated[
        list[str] | None,
        typer.Option(
            "--form",
            "-F",
            help="A form field NAME=VALUE, or a file NAME=@PATH: the call goes as multipart/form-data (repeatable).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the result to this file (bytes as they are, JSON as JSON).", dir_okay=False
        ),
    ] = None,
    model_id: Annotated[
        str | None,
        typer.Option("--model-id", help="The multiplexed model the call is for (the fnserve-model-id header)."),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Call an endpoint and print the result (streaming routes print chunks as they arrive); a result that is not
    JSON (an image, audio) is written as it is: give `-o FILE` to keep it in a file."""
    arguments = json_object(data, "--data")
    with connect(url, api_key) as client, contextlib.ExitStack() as opened:
        for field in form or []:
            field_name, equals, value = field.partition("=")
            if not equals or not field_name:
                raise fail(f"-F takes NAME=VALUE or NAME=@PATH, got {field!r}")
            if value.startswith("@"):
                try:
                    arguments[field_name] = opened.enter_context(Path(value[1:]).open("rb"))
                except OSError as exc:
                    raise fail(f"-F {field_name}: cannot read {value[1:]!r} ({exc.strerror or exc})") from None
            else:
                arguments[field_name] = value
        require_server(client)
        from fnserve.client.deployment import Deployment

        deployment = Deployment(client, guard(lambda: client.get_service(name)))
        routes = [e for e in deployment.endpoints.values() if matches_route(e["path"], path)]
        chosen = method.upper() if method else (routes[0]["method"] if routes else "POST")
        streaming = any(e["streaming"] and e["method"] == chosen for e in routes)

        def run() -> None:
            if streaming:  # each chunk as it came, byte for byte; a newline of our own only to end a terminal line
                with contextlib.ExitStack() as files:
                    out = sys.stdout.buffer if output is None else files.enter_context(output.open("wb"))
                    line_ended = True
                    prefix = deployment._info["route_prefix"]
                    for chunk in client.stream(prefix, path, chosen, arguments, model_id=model_id):
                        if chunk:
                            data = chunk.encode() if isinstance(chunk, str) else chunk
                            out.write(data)
                            out.flush()
                            line_ended = data.endswith(b"\n")
                    if output is None and sys.stdout.isatty() and not line_ended:
                        out.write(b"\n")
            else:
                result = client.invoke(
                    deployment._info["route_prefix"], path, chosen, arguments, assets=asset, model_id=model_id
                )
                if output is None:
                    print_result(result)
                else:
                    output.write_bytes(result_bytes(result))
                    errors.print(f"Wrote {output.stat().st_size} bytes to {output}", highlight=False)

        guard(run)


@app.command()
def versions(name: NameArgument, as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List a service's versions with their states, traffic weights and ready replicas."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.get_service(name))
    if as_json:
        print_json(info["versions"])
        return
    console.print(versions_table(info))


@app.command()
def rollback(
    name: NameArgument,
    to: Annotated[
        int | None, typer.Option("--to", help="The version to serve.", show_default="the previous one")
    ] = None,
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
def status(name: NameArgument, as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """A service's versions, replicas, states and reasons."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.get_service(name))
    if as_json:
        print_json(info)
        return
    print_deployment(info)
    console.print(versions_table(info))
    environment_line(info)
    # MODELS only for a service with multiplexed models: least recently used first, the next to be dropped
    multiplexed = any(replica.get("models") for replica in info["replicas"])
    columns = ["REPLICA", "STATE", "PID", "IN FLIGHT", "COLD START", *(["MODELS"] if multiplexed else []), "REASON"]
    replicas = Table(*columns, title=f"Replicas of version {info['version']}")
    for replica in info["replicas"]:
        cold_start_ms = replica.get("cold_start_ms")
        models = [escape(", ".join(replica.get("models") or []))] if multiplexed else []
        replicas.add_row(
            replica["replica_id"],
            replica["state"],
            str(replica["pid"]),
            str(replica["in_flight"]),
            "" if cold_start_ms is None else f"{cold_start_ms:.0f} ms",
            *models,
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


def environment_line(info: dict[str, Any]) -> None:
    """The packages the current version runs with, when it has its own (docs/ENVIRONMENTS.md)."""
    current = next((v for v in info["versions"] if v["version"] == info["version"]), None)
    environment = current.get("environment") if current is not None else None
    if not environment:
        return
    named = f" (environment {environment['env']})" if environment.get("env") else ""
    locked = len([line for line in (environment.get("lock") or "").splitlines() if line and not line.startswith("#")])
    plural = "" if locked == 1 else "s"
    resolved = f", {locked} package{plural} locked" if environment.get("lock") else ", not built yet"
    console.print(
        f"[bold]Environment[/] python {environment['python']}{named}: "
        f"{escape(', '.join(environment['requirements']) or 'no requirements')}{resolved}; "
        f"its build: `fnserve build-log {info['name']}`",
        soft_wrap=True,
    )


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
def teardown(name: NameArgument, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Stop a service (calls in progress finish first); it stays listed as INACTIVE."""
    with connect(url, api_key) as client:
        require_server(client)
        info = guard(lambda: client.teardown(name))
    console.print(f"[bold]{info['name']}[/] is {info['state']}")


@app.command()
def disable(name: NameArgument, url: UrlOption = None, api_key: KeyOption = None) -> None:
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
    name: NameArgument,
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
    name: NameArgument,
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
def tokens_list(
    name: NameArgument, as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """List NAME's tokens (id, hint, label, state); never their secrets."""
    with connect(url, api_key) as client:
        require_server(client)
        tokens = guard(lambda: client.list_tokens(name))
    if as_json:
        print_json(tokens)
        return
    if not tokens:
        console.print(f"{escape(name)} has no tokens; make one with `fnserve tokens create {escape(name)}`")
        return
    # Ids and hints are what `tokens revoke` takes: never cut or wrapped, however narrow the terminal.
    whole = [
        Column(header, no_wrap=True, min_width=max(len(header), *(len(token[key]) + 1 for token in tokens)))
        for header, key in (("token id", "token_id"), ("hint", "hint"))
    ]
    table = Table(*whole, "label", "state", "created")
    for token in tokens:
        state = "[green]active[/]" if token["active"] else f"[dim]revoked {token['revoked_at'][:19]}[/]"
        table.add_row(token["token_id"], token["hint"] + "…", escape(token["label"]), state, token["created_at"][:19])
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    name: NameArgument,
    token: Annotated[
        str, typer.Argument(help="The token id (or its hint) from `fnserve tokens ls`, or the whole token (fst_...).")
    ],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Revoke one of NAME's tokens: it stops working at once."""
    with connect(url, api_key) as client:
        require_server(client)
        revoked = guard(lambda: client.revoke_token(name, token))
    console.print(f"Token {revoked['token_id']} ({revoked['hint']}…) of [bold]{revoked['service']}[/] is revoked")


def print_result(result: Any) -> None:
    """An endpoint's result: JSON, or the raw bytes of a result that is not JSON."""
    if isinstance(result, bytes | Response):
        sys.stdout.buffer.write(result_bytes(result))
        sys.stdout.flush()
    else:
        console.print_json(orjson.dumps(result).decode())


def result_bytes(result: Any) -> bytes:
    """A result as the bytes a file keeps: raw bytes as they are, JSON as one line of JSON."""
    if isinstance(result, Response):
        return result.content
    if isinstance(result, bytes):
        return result
    return orjson.dumps(result) + b"\n"


app.add_typer(env_app, name="env")
app.command("build-log")(build_log)
app.command("deploy-model")(deploy_model)

app.add_typer(jobs_app, name="jobs")
app.add_typer(assets_app, name="assets")


@app.command()
def info(name: NameArgument, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """What a service says of itself: start date, up time, initializer arguments and API, as JSON."""
    with connect(url, api_key) as client:
        require_server(client)
        service = guard(lambda: client.get_service(name))
        app = bool((service.get("api") or {}).get("http_app"))  # an app's /info is its own: fnserve's is /-/info
        described = guard(lambda: client.service_info(service["route_prefix"], app=app))
    console.print_json(orjson.dumps(described).decode())


app.command()(run)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    hidden=True,
)
def worker(ctx: typer.Context) -> None:
    """Run one replica (started by the server; see `python -m fnserve.runtime.worker --help`)."""
    from fnserve.runtime.worker import main as worker_main

    worker_main(list(ctx.args))


def main() -> None:
    app()
