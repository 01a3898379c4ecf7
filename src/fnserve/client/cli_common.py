"""What every `fnserve` command shares: the consoles, the server options, connecting, and failing with a message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from fnserve.errors import FnserveError

if TYPE_CHECKING:
    from fnserve.client.api import Client

console = Console()
errors = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", envvar="FNSERVE_URL", help="The server [default: http://127.0.0.1:8000].")
]
KeyOption = Annotated[str | None, typer.Option("--api-key", envvar="FNSERVE_API_KEY", help="The owner API key.")]
AssetOption = Annotated[
    list[str] | None,
    typer.Option("--asset", help="An uploaded asset's id for the endpoint's `_assets` (repeat for more)."),
]


def connect(url: str | None, api_key: str | None) -> Client:
    """A client for the server at `url`. The client (httpx) is imported here, not with the CLI, so that
    `fnserve server`, which needs none of it, does not carry it for its whole life."""
    from fnserve.client.api import Client

    return Client(url, api_key=api_key)


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
