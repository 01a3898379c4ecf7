"""Python names for a service's routes, as the Python client's `Deployment` and `fs.handle` call them (the gateway
resolves a handle call's method by the same names, so this stays below both)."""

from __future__ import annotations

import re
from typing import Any

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]+")


def method_names(endpoints: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Python names for routes: `/custom-endpoint` → `custom_endpoint`, `/users/{user_id}` → `users`.

    Routes whose names collide (the same path under two methods) get the method in front: `get_items`.
    """

    def base(endpoint: dict[str, Any]) -> str:
        segments = [s for s in endpoint["path"].split("/") if s and not s.startswith("{")]
        name = _NOT_IDENTIFIER.sub("_", "_".join(segments)).strip("_") or "root"
        return f"_{name}" if name[0].isdigit() else name

    counts: dict[str, int] = {}
    for endpoint in endpoints:
        counts[base(endpoint)] = counts.get(base(endpoint), 0) + 1
    names: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        name = base(endpoint)
        names[name if counts[name] == 1 else f"{endpoint['method'].lower()}_{name}"] = endpoint
    return names
