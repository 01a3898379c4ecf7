"""`fnserve deploy --command ...`: a project folder whose own HTTP server is the service (docs/COMMANDS.md), uploaded
and started like any deploy; its options, and the curl that calls its inference URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from fnserve.client.cli_common import console, fail, require_server

if TYPE_CHECKING:
    from fnserve.client.api import Client

_COMMANDS = "Command service (docs/COMMANDS.md)"
CommandOption = Annotated[
    str | None,
    typer.Option(
        "--command",
        help="Serve this HTTP server, run in the project folder: '{port}' (and $PORT) is the port it must listen on.",
        rich_help_panel=_COMMANDS,
    ),
]
NameOption = Annotated[
    str | None, typer.Option("--name", help="The service's name (with --command).", rich_help_panel=_COMMANDS)
]
InferenceUrlOption = Annotated[
    str,
    typer.Option("--inference-url", help="The path its jobs are POSTed to as JSON.", rich_help_panel=_COMMANDS),
]
HealthUriOption = Annotated[
    str,
    typer.Option("--health-uri", help="Polled with GET until it answers 2xx.", rich_help_panel=_COMMANDS),
]
InferencePortOption = Annotated[
    int | None,
    typer.Option(
        "--inference-port", help="The port it listens on, when fixed (default: a free one).", rich_help_panel=_COMMANDS
    ),
]
StartupTimeoutOption = Annotated[
    str,
    typer.Option(
        "--startup-timeout", help="How long it may take to turn healthy ('300s', '10m').", rich_help_panel=_COMMANDS
    ),
]
RoutePrefixOption = Annotated[
    str | None,
    typer.Option("--route-prefix", help="Where it is served (default: /NAME).", rich_help_panel=_COMMANDS),
]
PublicOption = Annotated[
    bool,
    typer.Option("--public", help="No token needed to call it (auth=False).", rich_help_panel=_COMMANDS),
]


@dataclass(frozen=True)
class CommandOptions:
    command: str
    name: str | None
    inference_url: str
    health_uri: str
    inference_port: int | None
    startup_timeout: str
    route_prefix: str | None
    public: bool


def command_flags_given(
    name: str | None, inference_port: int | None, route_prefix: str | None, public: bool
) -> list[tuple[str, bool]]:
    """The --command flags given without --command (they would be ignored: say so)."""
    return [
        ("--name", name is not None),
        ("--inference-port", inference_port is not None),
        ("--route-prefix", route_prefix is not None),
        ("--public", public),
    ]


def deploy_command_folder(
    client: Client, root: Path, options: CommandOptions, *, replicas: int | None, timeout_s: float, keep_old: bool
) -> int:
    """Deploy `root` as a command service and print its panel; 0 when it is ACTIVE."""
    from fnserve.client.cli_deploy import announce_upload, show_outcome
    from fnserve.sdk.command import command_service
    from fnserve.sdk.deploy import deploy_command

    if options.name is None:
        raise fail("--command needs --name NAME: the service's name (its URL is /NAME)")
    if not root.is_dir():
        raise fail(f"{escape(str(root))} is not a folder; with --command, give the project folder (default: .)")
    service = command_service(
        options.command,
        name=options.name,
        inference_url=options.inference_url,
        health_uri=options.health_uri,
        inference_port=options.inference_port,
        startup_timeout=options.startup_timeout,
        project=root,
        route_prefix=options.route_prefix,
        auth=not options.public,
        replicas=replicas,
    )
    require_server(client)
    with console.status(f"Packing [bold]{escape(service.name)}[/] from {escape(str(root.resolve()))}…"):
        deployment = deploy_command(
            service,
            client,
            keep_old=keep_old,
            on_packed=lambda packed: announce_upload(service.name, root.resolve(), packed),
        )
    return show_outcome(client, deployment, timeout_s)


def command_lines(info: dict[str, Any]) -> list[str]:
    """The deploy panel's lines for a command service: what runs, its health and inference paths."""
    command = (info.get("api") or {}).get("command")
    if not command:
        return []
    return [
        f"[bold]Command[/]   {escape(command['command'])}",
        f"[bold]Health[/]    GET {escape(command['health_uri'])}",
        f"[bold]Inference[/] {escape(info['url'] + command['inference_url'])}",
    ]


def command_curl(info: dict[str, Any], auth: str | None) -> str | None:
    """A curl that POSTs JSON to a command service's inference URL; None for other services."""
    command = (info.get("api") or {}).get("command")
    if not command:
        return None
    header = f'-H "authorization: Bearer {auth}" ' if auth else ""
    return f"curl -X POST {info['url']}{command['inference_url']} {header}-H 'content-type: application/json' -d '{{}}'"
