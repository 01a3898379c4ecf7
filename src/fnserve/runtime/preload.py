"""What a replica in its own environment imports before its runtime packages are set aside (runtime/bootstrap.py):
the modules the worker and the decorators import lazily, so they are loaded from the overlay, not looked for later
among the service's packages."""

from __future__ import annotations

import contextlib
import importlib

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
