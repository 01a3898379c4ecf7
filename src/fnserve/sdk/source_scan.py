"""Reading a service's environment options from its source, without importing it: for a client that lacks the
packages the service imports (a laptop deploying a torch service to a GPU box). The server then imports it inside
its built environment (`POST /v1/describe`). Only literal values can be read: `requirements=["torch==2.13.0"]`,
`env="ml"`, `python="3.11"`."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from fnserve.errors import SpecError

_OPTIONS = ("requirements", "env", "python")


@dataclass(frozen=True)
class ScannedService:
    attribute: str  # the module-level name the service is bound to
    requirements: list[str] | None
    env: str | None
    python: str | None


def _is_service_call(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
    return name in ("service", "asgi_service")


def _options(call: ast.expr, where: str) -> dict[str, object]:
    found: dict[str, object] = {}
    if not isinstance(call, ast.Call):
        return found
    for keyword in call.keywords:
        if keyword.arg in _OPTIONS:
            try:
                found[keyword.arg] = ast.literal_eval(keyword.value)
            except ValueError:
                raise SpecError(
                    f"{where}: `{keyword.arg}=` is not a literal, so it cannot be read without importing the file; "
                    "write the list out in the decorator, or put the packages in requirements.txt"
                ) from None
    return found


def scan_services(path: Path) -> list[ScannedService]:
    """Every `@fs.service(...)` at the top level of a file (decorated functions and classes, and
    `name = fs.service(...)(function)`), with the options it gives literally."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        where = f"{path.name} line {node.lineno}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for decorator in node.decorator_list:
                if _is_service_call(decorator):
                    found.append(_scanned(node.name, _options(decorator, where)))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Call) and _is_service_call(value.func):
                found.append(_scanned(node.targets[0].id, _options(value.func, where)))
            elif isinstance(value, ast.Call) and _is_service_call(value):
                found.append(_scanned(node.targets[0].id, _options(value, where)))
    return found


def _scanned(attribute: str, options: dict[str, object]) -> ScannedService:
    requirements = options.get("requirements")
    env, python = options.get("env"), options.get("python")
    return ScannedService(
        attribute=attribute,
        requirements=list(requirements) if isinstance(requirements, list | tuple) else None,
        env=env if isinstance(env, str) else None,
        python=python if isinstance(python, str) else None,
    )


def pick_scanned(path: Path, attribute: str | None) -> ScannedService:
    """The service `attribute` of the file, or its only one. A named attribute that is no service may be an app
    (`app.py:app`, docs/APPS.md): it gets the project's requirements, and the server, importing it, says what it is."""
    services = scan_services(path)
    if attribute is not None:
        for service in services:
            if service.attribute == attribute:
                return service
        return ScannedService(attribute=attribute, requirements=None, env=None, python=None)
    if len(services) == 1:
        return services[0]
    if not services:
        raise SpecError(f"{path.name} defines no top-level @fs.service")
    names = ", ".join(service.attribute for service in services)
    raise SpecError(f"{path.name} defines several services ({names}); name one, e.g. {path.name}:NAME")
