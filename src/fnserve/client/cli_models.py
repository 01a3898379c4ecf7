"""`fnserve deploy-model FILE --name NAME`: a saved model served with no code (docs/ENVIRONMENTS.md, "Models")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fnserve.client.cli_common import KeyOption, UrlOption, connect, console, errors, guard, require_server


def deploy_model(
    model: Annotated[Path, typer.Argument(help="A saved model: .skops, .joblib, .pkl or .onnx.")],
    name: Annotated[str | None, typer.Option(help="The service name.", show_default="the file's name")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Answer class probabilities unless a call says not.")] = False,
    trust: Annotated[
        list[str] | None,
        typer.Option(help="A type the skops file may load beyond skops' safe defaults (repeat for more)."),
    ] = None,
    requirement: Annotated[
        list[str] | None, typer.Option("--requirement", "-p", help="A package beyond those the file implies.")
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="How many replicas.", show_default="1")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE (the build included).")] = 600.0,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the running versions serving too.")] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Serve a saved model: POST /predict (rows in, predictions out), GET /schema, and Allonia's /api/v1.0/ routes.
    Its packages are read from the file (skops: the scikit-learn it was saved with) and built on the server."""
    from fnserve.client.cli_deploy import print_deployment, wait_with_progress
    from fnserve.models import ModelFormat, detect_format
    from fnserve.sdk.model_deploy import TRUSTED_CODE_FORMATS
    from fnserve.sdk.model_deploy import deploy_model as deploy

    service_name = name or _name_from(model)
    with connect(url, api_key) as client:
        require_server(client)
        fmt = guard(lambda: detect_format(model))
        if fmt in TRUSTED_CODE_FORMATS:
            errors.print(
                f"[yellow]{escape(model.name)} is a {fmt.value} file: loading it runs the code it names.[/] "
                f"Deploy only models you made or trust; {ModelFormat.skops.value} files load safely."
            )
        with console.status(f"Uploading [bold]{escape(service_name)}[/] ({escape(model.name)}, {fmt.value})…"):
            deployment = guard(
                lambda: deploy(
                    model,
                    name=service_name,
                    proba=proba,
                    trusted_types=trust or (),
                    requirements=requirement or (),
                    replicas=replicas,
                    keep_old=keep_old,
                    client=client,
                )
            )
        wait_with_progress(deployment, timeout)
        print_deployment({**deployment._info, "token": deployment.token})
        if deployment.state != "ACTIVE":
            errors.print(f"[red]{escape(service_name)} is {deployment.state}[/]: {escape(deployment.reason or '')}")
            raise typer.Exit(1)


def _name_from(model: Path) -> str:
    """A service name from a file name: `iris-v2.skops` → `iris-v2`."""
    stem = "".join(c if c.isalnum() or c in "_-." else "-" for c in model.stem).strip("-._")
    return stem or "model"
