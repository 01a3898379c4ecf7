"""Disabling a service, and enabling it again (`fnserve disable NAME`, `fnserve enable NAME`).

A disabled service keeps its versions, tokens, specs and queued jobs, and runs no replicas: each of its deployments
that is not INACTIVE is stopped as a teardown stops it (calls in flight finish) and kept as DISABLED with its spec, so
enabling starts exactly those again (instance counts, autoscaling, weights). Its route prefix stays its own, and every
call under it answers `service_disabled` (503). The flag is the function's `disabled_at` in the store, so a restarted
server keeps it disabled. Queued jobs wait, within their TTL, for the service to come back; none is dropped.
"""

from __future__ import annotations

import asyncio

from fnserve.controlplane.supervisor import LiveDeployment, Supervisor
from fnserve.gateway.router import FunctionRoute
from fnserve.store import DeploymentState, FunctionRecord, StateStore


def disabled_reason(name: str) -> str:
    """The reason a disabled service's deployments show."""
    return f"disabled by the owner; `fnserve enable {name}` starts it again"


async def disable(store: StateStore, supervisor: Supervisor, function: FunctionRecord) -> FunctionRecord:
    """Refuse the service's calls from now on, and stop its replicas; returns once they have stopped. Idempotent: a
    disable cut short (a server that stopped halfway) is finished by disabling again."""
    reason = disabled_reason(function.name)
    # The store first, in one transaction: from then on no restart brings a deployment of it back.
    function = await asyncio.to_thread(store.disable_function, function.function_id, reason)
    _mark_routes(supervisor, function.name, await asyncio.to_thread(_kept_prefixes, store, function))
    lives = supervisor.live_of(function.function_id)
    # Disabled in the middle of a blue/green deploy: the new version alone comes back, those it replaces retire now.
    replaced_by = {version_id: live.version.number for live in lives for version_id in live.replaces}
    await asyncio.gather(
        *(
            supervisor.undeploy(version_id, reason=f"replaced by version {replaced_by[version_id]}")
            if version_id in replaced_by
            else supervisor.undeploy(version_id, reason=reason, state=DeploymentState.disabled)
            for version_id in (live.version.version_id for live in lives)
        )
    )
    # Again: a replica that became ready while its deployment was stopping may have saved ACTIVE meanwhile.
    return await asyncio.to_thread(store.disable_function, function.function_id, reason)


async def enable(store: StateStore, supervisor: Supervisor, function: FunctionRecord) -> FunctionRecord:
    """Start the service's DISABLED deployments again as they were, and let its calls through. Returns at once, its
    deployments DEPLOYING (one whose time limit passed meanwhile becomes INACTIVE, as after a restart). Enabling a
    service that is not disabled starts nothing."""
    function = await asyncio.to_thread(store.enable_function, function.function_id)
    try:
        for deployment in await asyncio.to_thread(store.list_deployments, function.function_id):
            if deployment.state is DeploymentState.disabled:
                await supervisor.restore(deployment)
    finally:
        for prefix, route in supervisor.prefixes.items():
            if route.name == function.name and route.disabled:
                route.disabled = False
                if route.empty:  # nothing was deployed: the prefix is free again
                    supervisor.prefixes.remove(prefix)
    return function


async def keep_disabled(store: StateStore, supervisor: Supervisor) -> None:
    """At the server's start: the prefixes of every disabled service answer `service_disabled` again."""

    def find() -> list[tuple[str, set[str]]]:
        return [(f.name, _kept_prefixes(store, f)) for f in store.list_functions() if f.disabled]

    for name, prefixes in await asyncio.to_thread(find):
        _mark_routes(supervisor, name, prefixes)


def is_disabled(supervisor: Supervisor, name: str) -> bool:
    """Whether the service `name` is disabled, as its routes say (no store read)."""
    return any(route.disabled for _, route in supervisor.prefixes.items() if route.name == name)


def _kept_prefixes(store: StateStore, function: FunctionRecord) -> set[str]:
    """The route prefixes a disabled service keeps: its deployed versions' (DISABLED ones included), and its newest
    version's (a service with nothing deployed is still refused by name)."""
    versions = store.list_versions(function.function_id)
    deployed = {
        d.version_id for d in store.list_deployments(function.function_id) if d.state is not DeploymentState.inactive
    }
    prefixes = {version.spec.route_prefix for version in versions if version.version_id in deployed}
    if versions:
        prefixes.add(versions[-1].spec.route_prefix)
    return prefixes


def _mark_routes(supervisor: Supervisor, name: str, prefixes: set[str]) -> None:
    for prefix in prefixes:
        route = supervisor.prefixes.get(prefix)
        if route is None:
            route = FunctionRoute[LiveDeployment](name)
            supervisor.prefixes.set(prefix, route)
        if route.name == name:  # a prefix that another service has taken since stays with it
            route.disabled = True
