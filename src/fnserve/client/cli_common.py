"""What every `fnserve` command shares: the consoles, the server options, connecting, and failing with a message."""

from __future__ import annotations

import errno
import socket
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from fnserve._tracebacks import describe_user_error
from fnserve.errors import FnserveError

if TYPE_CHECKING:
    from fnserve.client.api import Client
    from fnserve.settings import Settings

# Piped or redirected, output is for programs and files: no width to fit, so no id, URL or row is cut or folded.
PIPED_WIDTH = 100_000
console = Console()
errors = Console(stderr=True)
for _console in (console, errors):
    if not _console.is_terminal:
        _console.width = PIPED_WIDTH


@dataclass
class CliState:
    """What the root options (`fnserve --debug ...`) set for every command."""

    debug: bool = False


state = CliState()

UrlOption = Annotated[
    str | None, typer.Option("--url", envvar="FNSERVE_URL", help="The server.", show_default="http://127.0.0.1:8000")
]
KeyOption = Annotated[str | None, typer.Option("--api-key", envvar="FNSERVE_API_KEY", help="The owner API key.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the API's own objects) instead of a table.")]
NameArgument = Annotated[str, typer.Argument(help="The service name (or its id).", show_default=False)]
AssetOption = Annotated[
    list[str] | None,
    typer.Option("--asset", help="An uploaded asset's id for the endpoint's `_assets` (repeat for more)."),
]


def connect(url: str | None, api_key: str | None) -> Client:
    """A client for the server at `url`. The client (httpx) is imported here, not with the CLI, so that
    `fnserve server`, which needs none of it, does not carry it for its whole life."""
    from fnserve.client.api import Client

    try:
        return Client(url, api_key=api_key)
    except ValueError as exc:  # a URL that names no server (settings.server_url)
        raise fail(escape(str(exc))) from None


def print_json(value: Any) -> None:
    """JSON for scripts, on stdout as is: indented, never wrapped or highlighted."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]Error:[/] {message}")
    return typer.Exit(code)


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def require_server(client: Client) -> None:
    if not client.health():
        raise fail(f"no fnserve server answers at {client.url}; start one with `fnserve server` or pass --url")


def user_code_failed(exc: BaseException) -> typer.Exit:
    """A service's file did not import (a syntax error, a module of the project that is missing, an error at its top
    level): where in the user's own files, and what; the whole traceback only with `--debug`."""
    if state.debug:
        errors.print("".join(traceback.format_exception(exc)).rstrip(), highlight=False, markup=False)
        return typer.Exit(1)
    described = describe_user_error(exc, root=Path.cwd())
    return fail(f"{escape(described)}\n[dim](`fnserve --debug ...` shows the whole traceback)[/]")


def listen(settings: Settings) -> socket.socket:
    """The server's socket, bound here so that a port in use is one line that says what to do."""
    from fnserve.server import bind_socket

    try:
        return bind_socket(settings.host, settings.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise fail(
                f"port {settings.port} on {settings.host} is in use (another fnserve server?); stop it, or pick "
                "another with --port (--port 0 takes a free one)"
            ) from None
        raise fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None


def run_server(main: Coroutine[Any, Any, None]) -> None:
    """Run a server to its end; one that cannot start (another server holds its home, the home cannot be written)
    says why in one line."""
    from fnserve._loop import run as run_on_uvloop

    try:
        run_on_uvloop(main)
    except FnserveError as exc:
        raise fail(escape(exc.message)) from None


def guard(action: Any) -> Any:
    try:
        return action()
    except FnserveError as exc:
        raise fail(f"{escape(exc.message)} [dim]({exc.code})[/]") from None


def json_object(text: str, flag: str) -> dict[str, Any]:
    """`--data`/`--init` text as a JSON object, or a one-line error naming the flag."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise fail(f"{flag} is not valid JSON ({exc}); for example {flag} '{{\"x\": 1}}'") from None
    if not isinstance(value, dict):
        raise fail(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def matches_route(template: str, path: str) -> bool:
    """Whether a concrete path (`/users/7`) fits a route template (`/users/{user_id}`)."""
    parts, actual = template.split("/"), path.split("/")
    return len(parts) == len(actual) and all(p == a or p.startswith("{") for p, a in zip(parts, actual, strict=True))


def when(value: str | float | None) -> str:
    """A timestamp as `2026-11-22 10:00:00` (UTC), from ISO text or epoch seconds."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")
