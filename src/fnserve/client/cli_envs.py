"""`fnserve env ...` (named environments and the builds on the server), `fnserve build-log NAME`, and how `fnserve
deploy` shows a build while it runs: docs/ENVIRONMENTS.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fnserve.client.cli_common import (
    JsonOption,
    KeyOption,
    NameArgument,
    UrlOption,
    connect,
    console,
    fail,
    guard,
    human_size,
    print_json,
)
from fnserve.envs.requirements import parse_requirements_text

if TYPE_CHECKING:
    from fnserve.client.api import Client

env_app = typer.Typer(help="Environments: named package sets services run in (`env=`), and the builds on the server.")


@env_app.command("create")
def env_create(
    name: Annotated[str, typer.Argument(help="The environment's name, as services name it in `env=`.")],
    requirement_file: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements.txt to read the packages from.")
    ] = None,
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement like 'numpy>=2' (repeat for more).")
    ] = None,
    python: Annotated[str | None, typer.Option(help="Python version, e.g. 3.11.", show_default="the server's")] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Create (or update) a named environment; services use it with `@fs.service(env="NAME")`. It is built when the
    first service that names it deploys."""
    requirements = list(package or [])
    if requirement_file is not None:
        try:
            requirements += parse_requirements_text(requirement_file.read_text(), source=str(requirement_file))
        except OSError as exc:
            raise fail(f"cannot read {requirement_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise fail(escape(str(exc))) from None
    with connect(url, api_key) as client:
        record = guard(lambda: client.put_environment(name, requirements, python))
    console.print(
        f"Environment [bold]{escape(name)}[/]: python {record['python']}, {len(record['requirements'])} requirements "
        f"({escape(', '.join(record['requirements'])) or 'none'}). Use it with [bold]@fs.service(env={name!r})[/]."
    )


@env_app.command("ls")
def env_list(as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Named environments, then every build on the server with its size and the versions that use it."""
    with connect(url, api_key) as client:
        listing = guard(client.list_environments)
    if as_json:
        print_json(listing)
        return
    named = Table("name", "python", "requirements", title="Named environments", title_justify="left")
    for record in listing["environments"]:
        named.add_row(record["name"], record["python"], escape(", ".join(record["requirements"])))
    builds = Table(
        "key", "python", "requirements", "packages", "size", "built", "used by", title="Builds", title_justify="left"
    )
    total = 0
    for build in listing["builds"]:
        total += build["size_bytes"]
        built = datetime.fromtimestamp(build["built_at"], UTC).strftime("%Y-%m-%d %H:%M") if build["built_at"] else ""
        users = ", ".join(build["used_by"]) or "[dim]nothing[/]"
        builds.add_row(
            build["key"] + (" [green]●[/]" if build["running"] else ""),
            build["python"] or "",
            escape(", ".join(build["requirements"])),
            str(build["packages"] or ""),
            human_size(build["size_bytes"]),
            built,
            users,
        )
    console.print(named)
    console.print(builds)
    console.print(
        f"{len(listing['builds'])} builds, {human_size(total)}; [green]●[/] runs now. "
        "`fnserve env prune` removes the builds no running version uses."
    )


@env_app.command("rm")
def env_remove(
    name_or_key: Annotated[str, typer.Argument(help="A named environment, or a build's key from `fnserve env ls`.")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Remove a named environment (versions made from it keep their packages), or a build by its key."""
    with connect(url, api_key) as client:
        removed = guard(lambda: client.delete_environment(name_or_key))
    freed = f", {human_size(removed['freed_bytes'])} freed" if removed["kind"] == "build" else ""
    console.print(f"Removed {removed['kind']} [bold]{escape(name_or_key)}[/]{freed}")


@env_app.command("prune")
def env_prune(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Remove every build no running version uses (a later deploy rebuilds it from its lock) and half-done builds."""
    with connect(url, api_key) as client:
        pruned = guard(client.prune_environments)
    console.print(f"Removed {len(pruned['removed'])} builds, {human_size(pruned['freed_bytes'])} freed")


def build_log(
    name: NameArgument,
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="A version number.", show_default="newest")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print the environment build log of a service's version: what uv resolved and installed, or why it failed."""
    with connect(url, api_key) as client:
        text = guard(lambda: client.build_log(name, version))
    console.print(escape(text.rstrip()), highlight=False, soft_wrap=True)


def missing_package_target(target: str, missing: ModuleNotFoundError) -> tuple[Path, str | None]:
    """The file and service name of a target whose import failed for want of a package this machine lacks; the
    error itself again when the missing module is the project's own (a typo in its imports) or the target is not a
    file."""
    from fnserve.sdk.loader import split_target

    location, attribute = split_target(target)
    path = Path(location)
    top = (missing.name or "").partition(".")[0]
    own = path.parent / top
    if not path.is_file() or not top or own.is_dir() or own.with_suffix(".py").is_file():
        raise missing
    return path, attribute


def print_build_event(event: dict[str, Any]) -> None:
    """A line of a build the server runs for `fnserve deploy` (POST /v1/describe)."""
    if event.get("event") == "log":
        console.print(f"  [dim]{escape(event['line'])}[/]", highlight=False, soft_wrap=True)


class BuildFollower:
    """Prints a version's build log as it grows, for `fnserve deploy`: uv's own lines, dimmed, under the bar."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self.printed = 0

    def follow(self, info: dict[str, Any]) -> None:
        if info.get("state") != "BUILDING" and not self.printed:
            return
        try:
            lines = self.client.build_log(self.name, info.get("version")).splitlines()
        except Exception:
            return  # not written yet
        for line in lines[self.printed :]:
            console.print(f"  [dim]{escape(line)}[/]", highlight=False, soft_wrap=True)
        self.printed = len(lines)
