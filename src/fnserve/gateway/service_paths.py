"""The paths every service answers itself, beside its endpoints: `/ping`, `/info`, `/docs`, `/docs/specs.json`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from fnserve.controlplane.supervisor import LiveDeployment
from fnserve.docs import service_spec_url, swagger_ui_html
from fnserve.gateway.router import EndpointRoute
from fnserve.gateway.validation import ArgumentsValidator
from fnserve.openapi import api_description, service_openapi

logger = logging.getLogger("fnserve.gateway")


def service_info(live: LiveDeployment) -> dict[str, Any]:
    """`/info` (`/-/info` for an app): when the service started, how long it has run, its initializer's arguments, its
    API.

    The API is what the replicas reported (it knows which parameters the initializer fills in), or, before any
    replica is ready, the same description made from the spec alone.
    """
    shown = live.version.init_shown or {}
    info = {
        "name": live.name,
        "version": live.version.number,
        "start_date": live.started_at.isoformat(),
        "up_time": round((datetime.now(UTC) - live.started_at).total_seconds(), 3),
        "init_args": shown.get("args", []),
        "init_kwargs": shown.get("kwargs", {}),
        "api": live.version.api or api_description(live.spec),
    }
    if live.spec.http_app is not None:  # an app served whole: its routes and docs are its own (docs/APPS.md)
        info["http_app"] = live.spec.http_app
        info["app_docs"] = f"{live.spec.route_prefix.rstrip('/')}/docs"
        if live.spec.command is not None:
            info["command"] = live.spec.command.model_dump(mode="json")
    return info


def auto_parameters(live: LiveDeployment) -> set[str]:
    """Parameters the initializer fills in, as the replicas reported them (none before one is ready)."""
    api = live.version.api or {}
    return {
        name
        for path in api.get("paths", {}).values()
        for name, parameter in path.get("parameters", {}).items()
        if parameter.get("auto")
    }


def openapi_json(live: LiveDeployment) -> bytes:
    """`/docs/specs.json`: the service's OpenAPI document, its server relative to where it is served."""
    document = service_openapi(
        live.spec, server_url="", version=live.version.number, auto_parameters=auto_parameters(live)
    )
    return orjson.dumps(document)


def swagger_page(live: LiveDeployment) -> bytes:
    """`/docs`: Swagger UI for the service, its scripts served by this server (no CDN)."""
    return swagger_ui_html(
        title=f"{live.name} v{live.version.number}", spec_url=service_spec_url(live.spec.route_prefix)
    )


def arguments_validator(live: LiveDeployment, route: EndpointRoute) -> ArgumentsValidator | None:
    """The route's validator, made on its first call once a replica has said which parameters its initializer
    fills in (those may be left out); None when the spec has no arguments schema."""
    if route.index in live.validators:
        return live.validators[route.index]
    if live.version.api is None:
        return None
    schema = route.spec.arguments_schema
    validator = None
    if schema is not None:
        try:
            validator = ArgumentsValidator(schema, route=route.spec.key, optional=auto_parameters(live))
        except Exception:  # a schema we cannot compile: the replica validates alone, as before
            logger.exception("Arguments schema of %s %s cannot be compiled", live.label, route.spec.key)
    live.validators[route.index] = validator
    return validator
