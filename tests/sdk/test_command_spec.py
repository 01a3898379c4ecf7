"""Declaring a command service: `fs.command_service`'s options and their checks, and `ServiceSpec.command` in
NVCF's names (what the /v1 API takes), without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

import fnserve as fs
from fnserve.errors import SpecError
from fnserve.spec import CommandSpec, ServiceSpec


def test_command_service_spec_says_what_runs() -> None:
    service = fs.command_service(
        "python serve.py --port {port}",
        name="llm",
        inference_url="/v1/completions",
        health_uri="/ready",
        startup_timeout="10m",
        replicas=2,
        auth=False,
    )

    spec = service.spec
    assert spec.http_app == "command"
    assert spec.command == CommandSpec(
        command="python serve.py --port {port}",
        inference_url="/v1/completions",
        health_uri="/ready",
        startup_timeout_s=600,
    )
    assert (spec.route_prefix, spec.replicas, spec.auth, spec.endpoints) == ("/llm", 2, False, [])
    assert spec.default_max_ongoing_requests == 64
    assert ServiceSpec.model_validate(spec.model_dump(mode="json")) == spec  # what the store keeps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": "  "}, "command is blank"),
        ({"health_uri": "health"}, "must be a path starting with '/'"),
        ({"inference_url": "/v1/a b"}, "without spaces"),
        ({"inference_port": 70_000}, "inference_port"),
        ({"startup_timeout": "soon"}, "startup_timeout"),
        ({"project": "/no/such/folder"}, "is not a folder"),
    ],
)
def test_command_service_refuses_bad_options_naming_them(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"command": "serve --port {port}", "name": "llm", **options}

    with pytest.raises(SpecError, match=message):
        fs.command_service(**arguments)  # type: ignore[arg-type]


def test_project_is_kept_for_the_deploy(tmp_path: Path) -> None:
    from fnserve.sdk.command import command_project

    service = fs.command_service("serve", name="llm", project=tmp_path)

    assert command_project(service) == tmp_path


def test_nvcf_flat_fields_become_the_command() -> None:
    """What a REST caller writes as NVCF does: the command, and its URLs and port beside it in camelCase."""
    spec = ServiceSpec.model_validate(
        {
            "name": "llm",
            "route_prefix": "/llm",
            "command": "python serve.py",
            "inferenceUrl": "/v1/completions",
            "inferencePort": 8000,
            "healthUri": "/health",
        }
    )

    assert spec.http_app == "command"
    assert spec.command == CommandSpec(
        command="python serve.py", inference_url="/v1/completions", inference_port=8000, health_uri="/health"
    )


def test_nested_command_takes_both_spellings() -> None:
    spec = ServiceSpec.model_validate(
        {
            "name": "llm",
            "route_prefix": "/llm",
            "http_app": "command",
            "command": {"command": "serve", "inference_url": "/infer", "healthUri": "/ok", "startupTimeoutS": 5},
        }
    )

    assert spec.command == CommandSpec(command="serve", inference_url="/infer", health_uri="/ok", startup_timeout_s=5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"http_app": "command"}, "needs the command to run"),
        ({"http_app": "asgi", "command": {"command": "serve"}}, "served as http_app 'command'"),
        ({"command": {"command": "serve", "healthUri": "/ok", "unknown": 1}}, "unknown"),
    ],
)
def test_inconsistent_command_specs_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ServiceSpec(name="llm", route_prefix="/llm", **fields)  # type: ignore[arg-type]
