"""`fnserve assets ...`: files uploaded once (streamed, with a progress bar), listed, downloaded and deleted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from fnserve.client.cli_common import (
    JsonOption,
    KeyOption,
    UrlOption,
    connect,
    console,
    errors,
    guard,
    human_size,
    print_json,
    require_server,
    when,
)

assets_app = typer.Typer(help="Assets: files uploaded once, then named by id in calls (`--asset ID`).")

_PROGRESS_FROM_BYTES = 1024 * 1024


@assets_app.command("upload")
def assets_upload(
    file: Annotated[Path, typer.Argument(help="The file to upload.", exists=True, dir_okay=False, readable=True)],
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Its media type.", show_default="guessed from the name")
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
def assets_list(as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List the assets this key may use."""
    with connect(url, api_key) as client:
        require_server(client)
        assets = guard(client.list_assets)
    if as_json:
        print_json(assets)
        return
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
            when(asset.get("created_at")),
        )
    console.print(table)


@assets_app.command("download")
def assets_download(
    asset_id: Annotated[str, typer.Argument(help="The asset id (ast-…).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it.", show_default="stdout")
    ] = None,
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
