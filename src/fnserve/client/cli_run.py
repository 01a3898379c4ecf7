"""`fnserve run app.py [--reload]` and `Service.run()`: a server and deploys in one foreground process, for a first
try and the inner loop. With reload, a save of a file the deploy would pack deploys a new version (blue/green: the
running one answers until the new one is ready, so no call is dropped)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fnserve.client.cli_common import connect, console, errors, listen, run_server
from fnserve.client.cli_deploy import announce_owner_key, deploy_target
from fnserve.client.reload import POLL_INTERVAL_S, ProjectWatcher, forget_project_modules, project_root
from fnserve.errors import FnserveError
from fnserve.settings import Settings

if TYPE_CHECKING:
    from fnserve.client.api import Client
    from fnserve.server import Server

DEPLOY_TIMEOUT_S = 120.0


def run(
    targets: Annotated[list[str], typer.Argument(help="One or more app.py[:service] to deploy.")],
    host: Annotated[str | None, typer.Option(help="Interface to bind.", show_default="127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Port.", show_default="8000")] = None,
    home: Annotated[Path | None, typer.Option(help="State folder.", show_default="$FNSERVE_HOME or ~/.fnserve")] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload", help="Deploy a new version when a file of a target's project changes (blue/green, on save)."
        ),
    ] = False,
) -> None:
    """Start a server and deploy the targets in one go, in the foreground; Ctrl-C stops everything."""
    run_targets(targets, host=host, port=port, home=home, reload=reload)


def run_targets(
    targets: list[str],
    *,
    host: str | None = None,
    port: int | None = None,
    home: Path | None = None,
    reload: bool = False,
) -> None:
    """What `fnserve run` does: bind, serve, deploy each target, then (with `reload`) redeploy on change until the
    server stops."""
    from fnserve.server import serve

    settings = Settings.from_env(host=host, port=port, home=home)

    async def deploy_all(server_url: str, app: Server) -> None:
        console.print(f"fnserve server on [bold]{server_url}[/] (state in {settings.home})")
        announce_owner_key(app)
        stop = threading.Event()
        try:
            await asyncio.to_thread(_deploy_and_watch, server_url, targets, reload, stop)
        finally:  # the server stops (Ctrl-C): the watching thread ends at its next poll
            stop.set()

    run_server(serve(settings, sock=listen(settings), on_ready=deploy_all))


def _deploy_and_watch(server_url: str, targets: list[str], reload: bool, stop: threading.Event) -> None:
    with connect(server_url, None) as client:
        for target in targets:
            _deploy(client, target)
        if not reload:
            console.print("Serving; press [bold]Ctrl-C[/] to stop the server and its replicas.")
            return
        roots = {target: project_root(target) for target in targets}
        watcher = ProjectWatcher(list(roots.values()))
        console.print(
            "Serving, and deploying a new version on each save ("
            + ", ".join(escape(str(r)) for r in dict.fromkeys(roots.values()))
            + "); press [bold]Ctrl-C[/] to stop.",
            soft_wrap=True,
        )
        while not stop.wait(POLL_INTERVAL_S):
            for root in watcher.changed():
                forget_project_modules(root)
                for target in (t for t, r in roots.items() if r == root):
                    if stop.is_set():
                        return
                    console.print(f"[bold]{escape(target)}[/] changed: deploying a new version", highlight=False)
                    _deploy(client, target)
                    console.print("Serving; watching for changes.")


def _deploy(client: Client, target: str) -> None:
    """One target's deploy; its failure is printed (one line for a mistake in the file) and the others go on."""
    try:
        deploy_target(client, target, replicas=None, init={}, timeout_s=DEPLOY_TIMEOUT_S)
    except FnserveError as exc:
        errors.print(f"[red]{escape(target)}: {escape(exc.message)}[/]")
    except typer.Exit:  # its one-line error is printed already
        pass
