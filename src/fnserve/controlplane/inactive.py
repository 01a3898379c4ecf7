"""Calls to a service that runs nothing: one torn down, past its time limit or never deployed (INACTIVE), or left in
ERROR by an earlier run of the server, answers what it is and how to start it again, rather than a 404 that sends the
caller to `/-/routes` (which needs the owner key).

The gateway routes only what runs. `PastPrefixes` remembers every route prefix a version was registered or deployed
with, and its function: loaded from the store at start, kept as versions come. A path that no service ever had costs
a few dictionary lookups and no store read. What a caller is told is read from the store when such a call comes, so a
prefix that another service has taken since, or a service that now runs under another prefix, is never misreported:
those stay a 404.
"""

from __future__ import annotations

from fnserve.errors import DeploymentFailed, FnserveError, ServiceInactive, ServiceNotFound
from fnserve.gateway.router import PrefixTable
from fnserve.store import DeploymentState, StateStore
from fnserve.store.functions import RUNNING_STATES


class PastPrefixes:
    """Route prefix → the function whose version used it last (registered or deployed), running or not."""

    def __init__(self) -> None:
        self._table: PrefixTable[tuple[str, str]] = PrefixTable()  # prefix → (function id, prefix)

    def add(self, prefix: str, function_id: str) -> None:
        self._table.set(prefix, (function_id, prefix))

    def load(self, store: StateStore) -> None:
        """Every version's prefix from the store, the newest registration winning a prefix used by several."""
        found = [
            (version.created_at, version.spec.route_prefix, function.function_id)
            for function in store.list_functions()
            for version in store.list_versions(function.function_id)
        ]
        for _, prefix, function_id in sorted(found):
            self.add(prefix, function_id)

    def resolve(self, path: str) -> tuple[str, str] | None:
        """(function id, prefix) of the prefix that owns `path`, if a version ever had one that does."""
        found = self._table.resolve(path)
        return None if found is None else found[0]


def not_running_error(store: StateStore, function_id: str, prefix: str) -> FnserveError | None:
    """Why nothing serves `prefix` for this function: ServiceInactive, or DeploymentFailed when its last deployment
    there is in ERROR. None when the answer is a plain 404: the function is gone, no longer uses the prefix, or runs
    (or is disabled) with another one."""
    try:
        function = store.get_function(function_id)
    except ServiceNotFound:
        return None
    deployments = {d.version_id: d for d in store.list_deployments(function_id)}
    if function.disabled or any(d.state in RUNNING_STATES for d in deployments.values()):
        return None
    here = [v for v in store.list_versions(function_id) if v.spec.route_prefix == prefix]
    if not here:
        return None
    deployed = [(deployments[v.version_id], v) for v in here if v.version_id in deployments]
    if deployed:
        deployment, version = max(deployed, key=lambda pair: pair[0].updated_at)
        state, reason = deployment.state, deployment.reason or "undeployed"
    else:
        version, state, reason = here[-1], DeploymentState.inactive, "registered, never deployed"
    name, number = function.name, version.number
    if state is DeploymentState.error:
        return DeploymentFailed(
            f"{name} v{number} is in ERROR: {reason.splitlines()[0]}; see `fnserve status {name}` and the replica "
            "logs, fix the code and deploy again",
            details={"service": name, "version": number, "state": state.value, "reason": reason},
        )
    return ServiceInactive(
        f"Service {name!r} is not running: version {number} is {state.value} ({reason.splitlines()[0]}). Deploy it "
        f"again with `fnserve deploy`, or start version {number} again with `fnserve rollback {name} --to {number}`",
        details={"service": name, "version": number, "state": state.value, "reason": reason},
    )
