"""How a service describes itself: the API description that `/info` serves and `_api` receives.

Built from the `ServiceSpec` alone (plus which parameters the initializer fills in), so the
server and the replica produce the same dict.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fnserve.spec import ServiceSpec


def api_description(spec: ServiceSpec, auto_parameters: Collection[str] = ()) -> dict[str, Any]:
    """`{"name", "description", "paths": {path: {"method", "streaming", "description", "parameters",
    "var_kwargs", "return_type"}}}`. A path served by several methods is keyed `"METHOD /path"` after the first.
    """
    paths: dict[str, Any] = {}
    for endpoint in spec.endpoints:
        key = endpoint.path if endpoint.path not in paths else endpoint.key
        paths[key] = {
            "method": endpoint.method,
            "streaming": endpoint.streaming,
            "description": endpoint.description,
            "parameters": {
                name: {
                    "type": parameter.type,
                    "default": parameter.default,
                    "auto": name in auto_parameters and parameter.location == "body",
                }
                for name, parameter in endpoint.parameters.items()
            },
            "var_kwargs": endpoint.var_kwargs,
            "return_type": endpoint.return_type,
        }
    return {"name": spec.name, "description": spec.description, "paths": paths}
