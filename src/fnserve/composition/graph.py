"""Deploying a graph: a service and the services it uses, each its own versioned service, leaves first.

Two ways to write one. `@fs.service(uses=[embedder, ranker])` with service objects: `fs.deploy(app)` deploys them
too. Ray Serve's `Ingress.bind(Model.bind())`: an `Application`, whose bound arguments that are applications reach
the initializer as handles (`fs.handle`). The graph is checked whole before anything is uploaded: a cycle, two
services with one name, or a dependency named by a string that neither the graph nor the server has fails naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnserve.client.api import Client
from fnserve.client.deployment import Deployment
from fnserve.composition.handles import Handle
from fnserve.errors import FnserveError, ServiceNotFound, SpecError
from fnserve.sdk.loader import import_module_from, module_name_for, split_target
from fnserve.sdk.service import Service
from fnserve.spec import ServiceSpec


class Application:
    """A service with its initializer's arguments bound: `Model.bind(size=3)`. Arguments that are applications are
    deployed first and handed to the initializer as handles. `fs.deploy(app)()` deploys the graph."""

    def __init__(self, service: Service[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        service.check_init_arguments(args, kwargs)
        self.service = service
        self.args = args
        self.kwargs = kwargs

    @property
    def name(self) -> str:
        return self.service.name

    def __repr__(self) -> str:
        return f"<Application {self.service.name!r}>"


@dataclass
class Node:
    """One service of a graph, as it will be deployed."""

    service: Service[Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)  # names of services in the graph
    named: list[str] = field(default_factory=list)  # names of services it uses that the graph does not hold

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def spec(self) -> ServiceSpec:
        """Its spec, with the services bound into it added to its `uses`."""
        spec = self.service.spec
        uses = list(dict.fromkeys([*spec.uses, *self.depends_on]))
        return spec if uses == spec.uses else spec.model_copy(update={"uses": uses})


def is_graph(target: Any) -> bool:
    """Whether deploying `target` deploys more than one service."""
    return isinstance(target, Application) or (
        isinstance(target, Service) and any(isinstance(used, Service) for used in target.uses)
    )


def plan(root: Service[Any] | Application) -> list[list[Node]]:
    """The graph's services in levels, leaves first: each level only uses services of the levels before it (or
    services already deployed, named by string). SpecError naming a cycle or a clash of names."""
    nodes: dict[str, Node] = {}
    seen: dict[str, Service[Any]] = {}

    def visit(target: Service[Any] | Application) -> str:
        if isinstance(target, Application):
            service, args, kwargs = target.service, target.args, target.kwargs
        else:
            service, args, kwargs = target, (), {}
        known = seen.get(service.name)
        if known is not None:
            if known is not service:
                raise SpecError(
                    f"two different services are named {service.name!r} in the graph; give one another name"
                )
            return service.name
        seen[service.name] = service
        node = nodes[service.name] = Node(service)
        for used in service.uses:
            if isinstance(used, Service):
                node.depends_on.append(visit(used))
            else:
                node.named.append(used)
        node.args = tuple(_bound(value, visit, node) for value in args)
        node.kwargs = {key: _bound(value, visit, node) for key, value in kwargs.items()}
        return service.name

    visit(root)
    # A name used by string may be a service of this graph: then it is an edge too.
    for node in nodes.values():
        for name in list(node.named):
            if name in nodes:
                node.named.remove(name)
                node.depends_on.append(name)
    _refuse_cycles(nodes)
    levels: list[list[Node]] = []
    placed: set[str] = set()
    while len(placed) < len(nodes):
        level = [n for n in nodes.values() if n.name not in placed and set(n.depends_on) <= placed]
        levels.append(level)
        placed.update(n.name for n in level)
    return levels


def _bound(value: Any, visit: Callable[[Service[Any] | Application], str], node: Node) -> Any:
    """A bound argument: an application (or a service) becomes a handle on it, deployed first."""
    if isinstance(value, Application | Service):
        name = visit(value)
        node.depends_on.append(name)
        return Handle(name, None, url=None, api_key=None)
    if isinstance(value, list | tuple):
        return type(value)(_bound(item, visit, node) for item in value)
    if isinstance(value, dict):
        return {key: _bound(item, visit, node) for key, item in value.items()}
    return value


def _refuse_cycles(nodes: dict[str, Node]) -> None:
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for dependency in nodes[name].depends_on:
            if state.get(dependency) == 1:
                cycle = [*path[path.index(dependency) :], dependency]
                raise SpecError(
                    f"the services form a cycle: {' → '.join(cycle)}; a service cannot use one that uses it back"
                )
            if dependency not in state:
                walk(dependency, [*path, dependency])
        state[name] = 2

    for name in nodes:
        if name not in state:
            walk(name, [name])


def check_named(levels: list[list[Node]], client: Client) -> None:
    """Services named only by string must be deployed already: else SpecError naming them, before anything starts."""
    for level in levels:
        for node in level:
            for name in node.named:
                try:
                    client.get_service(name)
                except ServiceNotFound:
                    raise SpecError(
                        f"service {node.name!r} uses {name!r}, which is neither in the graph nor deployed; deploy "
                        f"{name!r} first, or give the service object in uses=[...]"
                    ) from None


def graph_target(target: str) -> tuple[Service[Any] | Application, Path] | None:
    """What `fnserve deploy app.py:app` names, when it is a graph (an application, or a service that uses services
    given as objects), and its project folder; None for anything else (the single-service path handles it)."""
    location, attribute = split_target(target)
    if attribute is None:
        return None
    if location.endswith(".py") or "/" in location or Path(location).is_file():
        path = Path(location)
        if not path.is_file():
            return None
        root = path.resolve().parent
        module_name = module_name_for(path, root)
    else:
        root, module_name = Path.cwd(), location
    found = getattr(import_module_from(root, module_name), attribute, None)
    if isinstance(found, Service | Application) and is_graph(found):
        return found, root
    return None


def entrypoint_of(service: Service[Any]) -> str:
    """`module:attribute` of a service of the project, for its replicas to import it."""
    module = sys.modules.get(service.__module__)
    for name, value in vars(module or object()).items():
        if value is service:
            return f"{service.__module__}:{name}"
    raise SpecError(
        f"service {service.name!r} is not a top-level name of its module {service.__module__}; a graph deployed "
        "from a project imports each of its services by name"
    )


def deploy_graph(
    levels: list[list[Node]],
    client: Client,
    submit: Callable[[Node], Deployment],
    *,
    timeout_s: float = 120.0,
    on_level: Callable[[list[str]], None] | None = None,
) -> Deployment:
    """Deploy level by level, each level waited for (ACTIVE) before the next starts; returns the root's deployment
    (the last level's one service) as submitted. A level that fails stops the deploy, naming the service.
    `on_level` hears the names of each level once it is ACTIVE (not the root's)."""
    check_named(levels, client)
    deployment: Deployment | None = None
    for index, level in enumerate(levels):
        started = [submit(node) for node in level]
        if index == len(levels) - 1:
            deployment = started[-1]
            break
        for node, started_one in zip(level, started, strict=True):
            try:
                started_one.wait(timeout_s=timeout_s)
            except (FnserveError, TimeoutError) as exc:
                raise type(exc)(f"the graph stopped at {node.name!r}, which others use: {exc}") from exc
        if on_level is not None:
            on_level([node.name for node in level])
    assert deployment is not None
    return deployment
