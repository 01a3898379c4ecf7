"""What a replica in its own environment does before its runtime packages are set aside (runtime/bootstrap.py): import
the modules the worker and the decorators import lazily, and run pydantic's paths once (a spec made, dumped and read
back, arguments validated, a result encoded), so that pydantic-core has imported what it imports on first use. Later,
the service's own copies of those packages could be found under the same names."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

LAZY_IMPORTS = (
    "yaml",  # OpenAPI YAML in docstrings
    "uvloop",
    "packaging.requirements",
    "pydantic.json_schema",
    "pydantic.functional_validators",
    "pydantic.functional_serializers",
    "pydantic.type_adapter",
    "pydantic.networks",
    "pydantic.types",
    "pydantic.color",
    "pydantic.dataclasses",
    "pydantic.root_model",
    "pydantic.fields",
    "pydantic._internal._generate_schema",
    "pydantic._internal._std_types_schema",
    "pydantic._internal._validators",
    "pydantic._internal._serializers",
    "pydantic._internal._core_metadata",
    "pydantic._internal._schema_gather",
    "pydantic.warnings",
    "pydantic.errors",
    "pydantic.config",
    "pydantic.aliases",
    "pydantic.annotated_handlers",
    "pydantic.plugin._loader",
    "pydantic.plugin._schema_validator",
    "fnserve.sdk.context",
    "fnserve.sdk.health",
    "fnserve.runtime.health",
)


def preload() -> None:
    for name in LAZY_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _warm_up()


def _probe(count: int, scale: float = 1.0, tags: list[str] | None = None, extra: dict[str, Any] | None = None) -> Any:
    return {"count": count, "scale": scale, "tags": tags, "extra": extra}


def _no_state() -> dict[str, Any]:
    return {}


def _warm_up() -> None:
    from fnserve.runtime.invoke import BoundEndpoint, to_json
    from fnserve.sdk.service import Service
    from fnserve.spec import ServiceSpec

    service: Service[dict[str, Any]] = Service(_no_state, name="fnserve-warm-up")
    service.endpoint("/probe")(_probe)
    spec = ServiceSpec.model_validate_json(service.spec.model_dump_json())
    bound = BoundEndpoint(service.endpoints[0], {}, {"name": spec.name})
    arguments = bound.arguments(b'{"count": "3", "tags": ["a"], "extra": {"k": null}}', {}, {}, None)
    to_json(_probe(**arguments), what="the warm-up result")
