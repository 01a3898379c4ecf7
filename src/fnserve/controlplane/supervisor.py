"""The supervisor: starts, health-checks, replaces and stops the replicas of every deployed version.

The store holds what should run; `LiveDeployment` holds what runs now. Every step catches and logs
its own errors so one failing service never stops the others. Replicas are started through a
`Backend`; the supervisor never knows which one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import functools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fnserve.backends.base import Backend, ReplicaLaunch, ReplicaProcess
from fnserve.backends.inventory import Inventory
from fnserve.composition.credentials import new_credential
from fnserve.controlplane import time_limit
from fnserve.controlplane.building import EnvironmentPreparer
from fnserve.controlplane.health import CrashLoop, exit_cause, failing_checks, not_answering
from fnserve.controlplane.inactive import PastPrefixes
from fnserve.controlplane.instance_types import resolve_resources
from fnserve.controlplane.memory_guard import MemoryGuard
from fnserve.controlplane.placement import WAITING, Placement
from fnserve.controlplane.spread import Fleet, slot_limit
from fnserve.envs.builder import BuildProgress, BuiltEnv, EnvBuilder
from fnserve.errors import EnvBuildFailed, ServiceExists, StorageUnavailable
from fnserve.gateway.connection import InitFailed, ReplicaConnection, ReplicaListener
from fnserve.gateway.router import FunctionRoute, PrefixTable, ReplicaPicker, ServiceRoutes
from fnserve.gateway.validation import ArgumentsValidator
from fnserve.metrics import Metrics
from fnserve.settings import Settings, Timeouts
from fnserve.spec import Autoscaling, Resources, ServiceSpec
from fnserve.store import (
    ArtifactStore,
    DeploymentRecord,
    DeploymentState,
    FunctionRecord,
    StateStore,
    VersionRecord,
)
from fnserve.store.functions import RUNNING_STATES

logger = logging.getLogger("fnserve.supervisor")

MAX_REPLICA_THREADS = 256
_DEFAULT_AUTOSCALING = Autoscaling()
FAILED_REPLICAS_KEPT = 5  # the last replicas that failed, shown with their reasons by `fnserve status`


class ReplicaState(enum.StrEnum):
    starting = "STARTING"
    ready = "READY"
    stopping = "STOPPING"
    stopped = "STOPPED"
    failed = "FAILED"


@dataclass
class Replica:
    replica_id: str
    state: ReplicaState = ReplicaState.starting
    process: ReplicaProcess | None = None
    connection: ReplicaConnection | None = None
    started_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    api: dict[str, Any] | None = None  # the API description the replica reported when ready
    retiring: bool = False  # being stopped on purpose (scale-down): not replaced when it exits
    health_failures: int = 0  # failed `check_health()` calls in a row
    checking: bool = False  # a health check is under way (the next one waits for it)
    killed_because: str | None = None  # stopped by the server for a limit (its memory), worded after its label

    @property
    def in_flight(self) -> int:
        return self.connection.in_flight if self.connection is not None else 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def label(self) -> str:
        return f"Replica [{self.replica_id} pid={self.pid}]"

    @property
    def cold_start_ms(self) -> float | None:
        """From process start to READY (initializer done)."""
        return None if self.ready_at is None else round((self.ready_at - self.started_at) * 1000, 1)

    def describe(self) -> dict[str, Any]:
        return {
            "replica_id": self.replica_id,
            "state": self.state.value,
            "pid": self.pid,
            "in_flight": self.in_flight,
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "cold_start_ms": self.cold_start_ms,
            "exit_code": self.exit_code,
            "reason": self.reason,
            # Multiplexed models it holds or loads, least recently used first (composition/model_cache.py)
            "models": list(self.connection.models) if self.connection is not None else [],
        }


class LiveDeployment:
    """One deployed version as it runs now: its routes and its replicas. The gateway reads it per request."""

    def __init__(
        self,
        function: FunctionRecord,
        version: VersionRecord,
        deployment: DeploymentRecord,
        resources: Resources,
        *,
        scale_up_wait_s: float = Timeouts.scale_up_wait_s,
    ) -> None:
        self.function = function
        self.version = version
        self.deployment = deployment
        self.resources = resources
        self.spec = version.spec
        self.default_concurrency = version.spec.default_max_ongoing_requests  # the spec is frozen: found once
        self.name = function.name
        self.routes = ServiceRoutes(version.spec)
        self.replicas: dict[str, Replica] = {}
        self.ready: list[ReplicaConnection] = []  # what the gateway picks from; kept in step with replicas
        self.picker: ReplicaPicker[ReplicaConnection] = _OpenPicker(self)
        self.state = deployment.state
        self.reason = deployment.reason
        self.target = deployment.spec.min_instances  # the autoscaler moves it within the instance bounds
        self.stopping = False
        self.crash_loop = CrashLoop()  # replicas that failed in a row: restart backoff, and when to give up
        self.failed_replicas: collections.deque[Replica] = collections.deque(maxlen=FAILED_REPLICAS_KEPT)
        self.tasks: set[asyncio.Task[None]] = set()
        self.replaces: list[str] = []  # versions to retire once this one is ACTIVE (blue/green)
        self.started_at = datetime.now(UTC)  # when this server started running it (`/info`'s start date)
        self.env: BuiltEnv | None = None  # its own environment, once built (None: the server's)
        self.build: BuildProgress | None = None  # its environment's build while BUILDING
        self.validators: dict[int, ArgumentsValidator | None] = {}  # by endpoint index; the gateway fills it
        # Requests waiting for a replica with a free slot (all are at `concurrency`), oldest first.
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.scale_up_wait_s = scale_up_wait_s  # the longest a call waits for a scale-up's replicas (spread.py)
        self.multiplexed = False  # its replicas have `@fs.multiplexed` loaders: calls may name a model

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version.number}"

    @property
    def desired(self) -> int:
        """Replicas it should run now: `min_instances`, or what the autoscaler chose up to `max_instances`."""
        return self.target

    def bounded(self, count: int) -> int:
        """`count` replicas kept within the deployment's instance bounds."""
        bounds = self.deployment.spec
        return max(bounds.min_instances, min(count, bounds.max_instances))

    @property
    def weight(self) -> int:
        return self.deployment.spec.weight

    @property
    def concurrency(self) -> int:
        """Calls and streams one replica may have in flight; read per request, so an update applies at once."""
        return self.deployment.spec.max_request_concurrency or self.default_concurrency

    def slot_limit(self, waited_s: float = 0.0) -> int:
        """Calls one ready replica may take now, for a call that has waited `waited_s`: `concurrency`, or while a
        scale-up brings replicas, its share of the autoscaling target (controlplane/spread.py)."""
        bounds = self.deployment.spec
        if bounds.min_instances == bounds.max_instances:  # a fixed count: no replica to wait for
            return self.concurrency
        starting, waiting_for_resources = 0, False
        for replica in self.replicas.values():
            if replica.state is ReplicaState.starting and not replica.retiring:
                starting += 1
                waiting_for_resources = waiting_for_resources or (replica.reason or "").startswith(WAITING)
        policy = self.spec.autoscaling or _DEFAULT_AUTOSCALING  # bounds set through the API: the default policy
        fleet = Fleet(
            ready=len(self.ready),
            starting=starting,
            waiting_for_resources=waiting_for_resources,
            max_replicas=bounds.max_instances,
            target_per_replica=policy.target_ongoing_requests,
            upscale_delay_s=policy.upscale_delay_s,
        )
        return slot_limit(self.concurrency, fleet, waited_s=waited_s, max_wait_s=self.scale_up_wait_s)

    async def wait_turn(self, deadline: float | None) -> None:
        """Wait, in order, until a slot may have come free (or replicas changed); TimeoutError at `deadline`
        (loop time). Callers look again, and wait again if they lost the race."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiting.append(waiter)
        # A plain timer rather than asyncio.timeout(): this path runs for every call over the limit.
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # woken, but leaving: the slot goes to the next one waiting
            else:  # timed out, or the caller left: it no longer waits
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self.waiting.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self) -> None:
        """A slot came free: wake the request that has waited longest."""
        if self.waiting:  # on every call's end: nothing to do in the common case
            self._wake(1)

    def wake_all(self) -> None:
        """Replicas or slots were added: every waiting request looks again."""
        self._wake(len(self.waiting))

    def _wake(self, count: int) -> None:
        while count and self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def refresh_ready(self) -> None:
        self.ready = [
            replica.connection
            for replica in self.replicas.values()
            if replica.state is ReplicaState.ready
            and not replica.retiring  # being scaled down: it gets SHUTDOWN next, so no new call may pick it
            and replica.connection is not None
            and replica.connection.is_open
        ]
        self.wake_all()

    @property
    def ready_count(self) -> int:
        return len(self.ready)

    @property
    def in_flight(self) -> int:
        """Calls its ready replicas are serving now."""
        return sum(connection.in_flight for connection in self.ready)

    @property
    def serving(self) -> bool:
        return self.state is DeploymentState.active


class _OpenPicker(ReplicaPicker[ReplicaConnection]):
    """Least loaded, never a replica whose connection is already closing. A replica killed with unread input resets
    its socket, and the connection is lost only a loop iteration later: a call that picked it meanwhile could not
    be sent, and would fail although other replicas are ready. Such a pick drops it from the ready list at once."""

    def __init__(self, live: LiveDeployment) -> None:
        super().__init__()
        self._live = live

    def pick(self, replicas: list[ReplicaConnection]) -> ReplicaConnection | None:
        connection = super().pick(replicas)
        if connection is None or connection.is_open:
            return connection
        self._live.refresh_ready()
        return super().pick(self._live.ready)


def _short_of_replicas(live: LiveDeployment) -> bool:
    """Whether the deployment runs (or starts) fewer replicas than it should."""
    running = [
        r for r in live.replicas.values() if r.state in (ReplicaState.starting, ReplicaState.ready) and not r.retiring
    ]
    return len(running) < live.desired


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        artifacts: ArtifactStore,
        backend: Backend,
        listener: ReplicaListener,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store = store
        self.artifacts = artifacts
        self.backend = backend
        self.listener = listener
        self.deployments: dict[str, LiveDeployment] = {}  # by version_id
        self.prefixes: PrefixTable[FunctionRoute[LiveDeployment]] = PrefixTable()
        self.past_prefixes = PastPrefixes()  # running or not: a call to a stopped service learns so (inactive.py)
        self._health_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.placement = Placement(Inventory.of_host(settings))  # what replicas hold of this host, and who waits
        self.env_builder = EnvBuilder(settings.environments_dir)
        self.environments = EnvironmentPreparer(self.env_builder, store, settings.home)
        self.memory_guard = MemoryGuard(self)

    # -- lifecycle of the supervisor itself --------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back every deployment that was ACTIVE or DEPLOYING when the server last stopped."""
        await asyncio.to_thread(self.past_prefixes.load, self.store)
        for deployment in await asyncio.to_thread(self.store.list_deployments):
            if deployment.state not in RUNNING_STATES:
                continue
            try:
                await self.restore(deployment)
            except Exception:
                logger.exception("Deployment [%s] could not be restored", deployment.deployment_id)
        self._health_task = asyncio.create_task(self._health_loop())
        self._background_task(self.memory_guard.run())

    async def close(self) -> None:
        """Stop every replica (gracefully, then by force), leaving the store's states for the next start."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(self._stop_deployment(live) for live in list(self.deployments.values())))
        self.deployments.clear()
        self.placement.close()

    # -- deploy, update, undeploy ----------------------------------------------------------------------------

    async def restore(self, deployment: DeploymentRecord) -> None:
        """Run a stored deployment again as it was (at start, or when its service is enabled); one whose time limit
        passed meanwhile (counted from `deployed_at`) becomes INACTIVE with the reason instead."""
        function = await asyncio.to_thread(self.store.get_function, deployment.function_id)
        version = await asyncio.to_thread(self.store.get_version, function.function_id, deployment.version_id)
        if time_limit.time_left_s(time_limit.expires_at(version.spec, deployment)) == 0:
            reason = time_limit.expired_reason(version.spec, deployment)
            logger.info("Deployment [%s v%s] expired meanwhile: %s", function.name, version.number, reason)
            await asyncio.to_thread(
                self.store.set_deployment_state, deployment.version_id, DeploymentState.inactive, reason
            )
            return
        logger.info(
            "Deployment [%s v%s] was %s; starting it again", function.name, version.number, deployment.state.value
        )
        await self.deploy(function, version, deployment)

    def check_prefix(self, spec: ServiceSpec) -> None:
        """Raise ServiceExists when another function owns `spec`'s route prefix."""
        owner = self.prefixes.get(spec.route_prefix)
        if owner is not None and owner.name != spec.name:
            raise ServiceExists(
                f"route prefix {spec.route_prefix} is already used by service {owner.name!r}; "
                "pass route_prefix=... to @fs.service, or tear that service down first"
            )

    async def deploy(
        self,
        function: FunctionRecord,
        version: VersionRecord,
        deployment: DeploymentRecord,
        *,
        replaces: Sequence[str] = (),
    ) -> LiveDeployment:
        """Run a version's replicas. Returns at once; the state moves to ACTIVE or ERROR in the background.

        `replaces` (version ids) is blue/green: the moment this version is ACTIVE those leave the route, then
        drain and stop. If this version fails, they keep serving.
        """
        self.check_prefix(version.spec)
        resources = resolve_resources(deployment.spec, version.spec.resources)
        live = LiveDeployment(
            function, version, deployment, resources, scale_up_wait_s=self.settings.timeouts.scale_up_wait_s
        )
        live.replaces = list(replaces)
        if version.spec.time_limit_s is not None:
            self._spawn(live, self._enforce_time_limit(live))
        self.deployments[version.version_id] = live
        self.past_prefixes.add(version.spec.route_prefix, function.function_id)
        route = self.prefixes.get(version.spec.route_prefix)
        if route is None:
            route = FunctionRoute(function.name)
            self.prefixes.set(version.spec.route_prefix, route)
        route.add(version.number, live)
        if version.environment is not None:
            # The build runs before any replica starts, so it never counts against a start timeout or health check.
            await self._set_state(live, DeploymentState.building, "preparing its environment")
            self._spawn(live, self._build_then_start(live))
        else:
            await self._start_replicas(live)
        return live

    async def _build_then_start(self, live: LiveDeployment) -> None:
        """BUILDING: build (or find) the version's environment, then start its replicas. A failed build is ERROR with
        uv's message, and is not tried again until the next deploy."""

        def show(progress: BuildProgress) -> None:
            if live.state is DeploymentState.building:
                live.build = progress
                live.reason = progress.text  # in memory only: `fnserve deploy` polls it many times a second

        assert live.version.environment is not None
        try:
            live.version, live.env = await self.environments.prepare(live.name, live.version, show)
        except EnvBuildFailed as exc:
            live.stopping = True
            logger.error("Deployment [%s] environment build failed: %s", live.label, exc.message)
            await self._set_state(live, DeploymentState.error, exc.message)
            return
        live.build = None
        if not live.stopping:
            await self._start_replicas(live)

    async def _start_replicas(self, live: LiveDeployment) -> None:
        resources = live.resources
        if live.desired == 0:
            await self._set_state(live, DeploymentState.active, None)
        elif (unfit := self.placement.inventory.never_fits(resources, replicas=live.desired)) is not None:
            live.stopping = True  # e.g. restored on a host with fewer GPUs: waiting would never end
            await self._set_state(live, DeploymentState.error, f"cannot run on this host: {unfit}")
        else:
            await self._set_state(live, DeploymentState.deploying, None)
            for _ in range(live.desired):
                self._spawn(live, self._run_replica(live))

    async def update(self, version_id: str, deployment: DeploymentRecord) -> None:
        """Apply new instance counts, concurrency and weight to a running deployment."""
        live = self.deployments.get(version_id)
        if live is None:
            return
        old_bounds = (live.deployment.spec.min_instances, live.deployment.spec.max_instances)
        live.deployment = deployment
        live.wake_all()  # a higher concurrency frees slots now
        route = self.prefixes.get(live.spec.route_prefix)
        if route is not None:
            route.refresh()
        # New instance counts start from the new minimum (the autoscaler adds what the load needs); a change of
        # weight or concurrency keeps what the autoscaler chose.
        bounds_changed = old_bounds != (deployment.spec.min_instances, deployment.spec.max_instances)
        await self.scale(live, deployment.spec.min_instances if bounds_changed else live.target)
        if live.state is DeploymentState.building:
            return  # the build's end starts its replicas, and makes it ACTIVE
        if live.desired == 0 or live.ready_count >= live.desired:
            await self._set_state(live, DeploymentState.active, None)

    def scale_soon(self, live: LiveDeployment, count: int) -> None:
        """Scale in the background (a scale-down drains replicas, which may take a while)."""
        live.target = live.bounded(count)  # at once, so that the next call does not ask again
        self._background_task(self.scale(live, live.target))

    def wake(self, live: LiveDeployment) -> bool:
        """A call found no ready replica. Scaled to zero: start one now. True when a replica is on its way."""
        if live.stopping or live.state is not DeploymentState.active:
            return False
        if live.target == 0:
            self.scale_soon(live, 1)
        return True

    async def scale(self, live: LiveDeployment, count: int) -> None:
        """Run `count` replicas, kept within the deployment's instance bounds: start the missing ones; drain and
        stop the extra ones (starting ones first, then the least busy: they drain fastest)."""
        live.target = live.bounded(count)
        if live.stopping or live.state is DeploymentState.building:
            return  # a build's end starts `target` replicas
        running = [r for r in live.replicas.values() if r.state in (ReplicaState.starting, ReplicaState.ready)]
        running = [r for r in running if not r.retiring]
        for _ in range(live.target - len(running)):
            self._spawn(live, self._run_replica(live))
        extra = len(running) - live.target
        if extra > 0:
            victims = sorted(running, key=lambda r: (r.state is ReplicaState.ready, r.in_flight))[:extra]
            for replica in victims:
                replica.retiring = True
            live.refresh_ready()
            await asyncio.gather(*(self._stop_replica(replica) for replica in victims), return_exceptions=True)

    async def undeploy(
        self,
        version_id: str,
        *,
        reason: str = "undeployed",
        graceful: bool = True,
        state: DeploymentState = DeploymentState.inactive,
    ) -> None:
        """Stop a version's replicas and mark it INACTIVE (or DISABLED: kept to start again when its service is
        enabled). `graceful`: calls in flight finish first."""
        live = self.deployments.pop(version_id, None)
        if live is not None:
            route = self.prefixes.get(live.spec.route_prefix)
            if route is not None:
                route.remove(live.version.number)
                if route.empty and not route.disabled:  # a disabled service keeps its prefix
                    self.prefixes.remove(live.spec.route_prefix)
            # INACTIVE (or DISABLED) from the moment it leaves the route, while its replicas drain.
            live.state, live.reason = state, reason
        await asyncio.to_thread(self.store.set_deployment_state, version_id, state, reason)
        if live is not None:
            await self._stop_deployment(live, graceful=graceful)

    def _background_task(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def live(self, version_id: str) -> LiveDeployment | None:
        return self.deployments.get(version_id)

    def live_of(self, function_id: str) -> list[LiveDeployment]:
        return [live for live in self.deployments.values() if live.function.function_id == function_id]

    # -- replicas -------------------------------------------------------------------------------------------------

    def _spawn(self, live: LiveDeployment, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    def _launch(self, live: LiveDeployment, replica_id: str, credential: str) -> ReplicaLaunch:
        version = live.version
        init_path = self.artifacts.path(version.init_sha256) if version.init_sha256 else None
        common: dict[str, Any] = {
            "replica_id": replica_id,
            "credential": credential,
            "service_name": live.name,
            "connect": self.listener.path,
            "resources": live.resources,
            "log_path": self.log_path(live.name, replica_id),
            "init_path": init_path,
            # The gateway keeps each replica within max_request_concurrency, which may rise live: enough threads
            # for it (made lazily, so an unused allowance costs nothing).
            "max_threads": min(max(self.settings.replica_threads, live.concurrency), MAX_REPLICA_THREADS),
            "allocation": self.placement.inventory.allocation(replica_id),
            "python": live.env.python if live.env is not None else None,
            "overlay": live.env.overlay if live.env is not None else None,
        }
        if version.spec.command is not None:  # no user code to load: the worker runs the command in the project
            command = version.spec.model_dump_json()
            code_dir = self.artifacts.unpacked(version.code_sha256) if version.code_kind == "archive" else None
            return ReplicaLaunch(command=command, code_dir=code_dir, **common)
        if version.code_kind == "pickle":
            return ReplicaLaunch(pickle_path=self.artifacts.path(version.code_sha256), **common)
        return ReplicaLaunch(
            code_dir=self.artifacts.unpacked(version.code_sha256), entrypoint=version.entrypoint, **common
        )

    def logs_dir(self, service_name: str) -> Path:
        return self.settings.home / "logs" / service_name

    def log_path(self, service_name: str, replica_id: str) -> Path:
        return self.logs_dir(service_name) / f"{replica_id}.log"

    async def _run_replica(self, live: LiveDeployment) -> None:
        """Start one replica, serve until it exits, then replace it unless the deployment is stopping."""
        replica = Replica(replica_id=f"{live.name}-v{live.version.number}-{uuid.uuid4().hex[:6]}")
        live.replicas[replica.replica_id] = replica
        try:
            if not await self.placement.place(self, live, replica):  # waits while its resources are not free
                return
            await self._start(live, replica)
        except InitFailed as exc:
            await self._replica_failed(live, replica, replica.killed_because or exc.message, exc.traceback_tail)
            return
        except Exception as exc:
            if isinstance(exc, StorageUnavailable):  # its log cannot be written: one line, not a traceback
                logger.error("%s of service [%s] could not start: %s", replica.label, live.label, exc.message)
            else:
                logger.exception("%s of service [%s] could not start", replica.label, live.label)
            message = replica.killed_because or f"{type(exc).__name__}: {exc}"
            await self._replica_failed(live, replica, message, "")
            return
        if live.state is not DeploymentState.active and live.ready_count >= live.desired:
            if replica.api is not None and live.version.api is None:
                await asyncio.to_thread(self.store.set_version_api, live.version.version_id, replica.api)
                live.version = replace(live.version, api=replica.api)
            await self._set_state(live, DeploymentState.active, None)
        assert replica.process is not None
        replica.exit_code = await replica.process.wait()
        on_purpose = live.stopping or replica.retiring or replica.state is ReplicaState.stopping
        if replica.state is ReplicaState.ready:  # nobody stopped it: it died
            replica.state, replica.reason = ReplicaState.failed, f"died: {exit_cause(replica.exit_code)}"
        elif replica.state is not ReplicaState.failed:  # failed: killed for its health, with the reason
            replica.state = ReplicaState.stopped
        live.refresh_ready()
        del live.replicas[replica.replica_id]
        if not on_purpose:
            await self._replace_failed(live, replica)

    def _record_failure(self, live: LiveDeployment, replica: Replica) -> None:
        """A replica failed (to start, or later): kept for `fnserve status`, and counted in the metrics."""
        live.failed_replicas.appendleft(replica)
        self.metrics.replica_failed(live.name)

    async def _replace_failed(self, live: LiveDeployment, replica: Replica) -> None:
        """A replica that was ready died, or was killed for its health: start a replacement, waiting longer each time
        it happens again soon; when it keeps happening, put the deployment in ERROR with the exit cause and the last
        lines of the replica's log, and stop restarting."""
        self._record_failure(live, replica)
        uptime_s = time.time() - (replica.ready_at or replica.started_at)
        backoff_s = live.crash_loop.record(uptime_s, self.settings)
        if backoff_s is None:
            path = self.log_path(live.name, replica.replica_id)
            reason = (
                f"replicas keep failing ({live.crash_loop.failures} in a row), so they are not restarted again; the "
                f"last, {replica.replica_id}, {replica.reason}, {uptime_s:.1f} s after it was ready. Last lines of "
                f"its log ({path}):\n{self.log_tail(live.name, replica.replica_id)}"
            )
            logger.error("Deployment [%s] is in ERROR: %s", live.label, reason)
            await self._give_up(live, reason)
            return
        logger.warning(
            "%s of service [%s] %s; starting a replacement%s",
            replica.label,
            live.label,
            replica.reason,
            f" in {backoff_s:g} s" if backoff_s else "",
        )
        await asyncio.sleep(backoff_s)
        if not live.stopping and _short_of_replicas(live):  # a scale-up meanwhile may have started one
            self._spawn(live, self._run_replica(live))

    async def _start(self, live: LiveDeployment, replica: Replica) -> None:
        timeouts = self.settings.timeouts
        credential = new_credential()  # its HELLO must carry it (composition/credentials.py)
        hello = self.listener.expect(replica.replica_id, credential)
        try:
            replica.process = await self.placement.started(  # its reservation is released when it exits
                replica.replica_id, lambda: self.backend.start(self._launch(live, replica.replica_id, credential))
            )
            exited: asyncio.Future[int] = asyncio.ensure_future(replica.process.wait())
            try:
                async with asyncio.timeout(timeouts.replica_connect_s):
                    await asyncio.wait([hello, exited], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                if not hello.done():
                    raise InitFailed(
                        f"the replica exited with code {exited.result()} before connecting; "
                        f"see {self.log_path(live.name, replica.replica_id)}",
                        self.log_tail(live.name, replica.replica_id),
                    )
                connection, _pid = hello.result()
                connection.label = replica.label
                connection.on_lost = live.refresh_ready
                connection.on_release = live.release
                connection.on_batch = functools.partial(self.metrics.batch_of, live.name, live.spec.endpoints)
                connection.service_name = live.name
                connection.uses = frozenset(live.spec.uses)
                replica.connection = connection
                async with asyncio.timeout(timeouts.replica_init_s):
                    api = await connection.initialized
                live.multiplexed = live.multiplexed or connection.multiplexed  # its MODELS came before READY
            finally:
                exited.cancel()
        except TimeoutError:
            raise InitFailed("the replica did not finish starting in time", "") from None
        finally:
            self.listener.forget(replica.replica_id)
        replica.state = ReplicaState.ready
        replica.ready_at = time.time()
        replica.reason = None
        replica.api = api
        if live.stopping or replica.retiring:  # stopped while it was starting
            self._background_task(self._stop_replica(replica))
            return
        live.refresh_ready()
        self.metrics.cold_start(live.name, replica.ready_at - replica.started_at)
        logger.info(
            "%s of service [%s] is ready in %.0f ms",
            replica.label,
            live.label,
            (replica.ready_at - replica.started_at) * 1000,
        )

    async def _replica_failed(self, live: LiveDeployment, replica: Replica, message: str, tail: str) -> None:
        """A replica did not get to READY. An initializer that raised fails the same way every time: ERROR at once,
        with its traceback. Anything else is tried again, with backoff, until it failed too many times in a row."""
        replica.state = ReplicaState.failed
        replica.reason = message
        live.replicas.pop(replica.replica_id, None)
        if replica.process is not None:
            replica.process.kill()
            replica.exit_code = await replica.process.wait()
        if live.stopping:
            return
        self._record_failure(live, replica)
        logger.error("%s of service [%s] failed to start: %s", replica.label, live.label, message)
        backoff_s = None if tail else live.crash_loop.record(0.0, self.settings)
        if backoff_s is None:
            if not tail:  # no traceback: say how it ended, and what it printed last
                message = (
                    f"{message} ({exit_cause(replica.exit_code)}; {live.crash_loop.failures} failures in a row). Last "
                    f"lines of its log ({self.log_path(live.name, replica.replica_id)}):"
                )
                tail = self.log_tail(live.name, replica.replica_id)
            await self._give_up(live, f"replica failed to start: {message}" + (f"\n{tail}" if tail else ""))
            return
        await asyncio.sleep(backoff_s)
        if not live.stopping and _short_of_replicas(live):  # a scale-up meanwhile may have started one
            self._spawn(live, self._run_replica(live))

    async def _give_up(self, live: LiveDeployment, reason: str) -> None:
        """ERROR with `reason`, and no more restarts: every replica of the deployment stops."""
        live.stopping = True  # first: replicas failing at the same moment must not restart, nor report again
        await self._set_state(live, DeploymentState.error, reason)
        await self._stop_deployment(live)

    async def _stop_replica(self, replica: Replica, *, graceful: bool = True) -> None:
        """Ask nicely (SHUTDOWN lets in-flight calls finish), then SIGTERM, then SIGKILL."""
        process = replica.process
        if process is None:
            return
        replica.state = ReplicaState.stopping
        if replica.connection is not None:
            replica.connection.stopped_because = (
                f"{replica.label} was stopped (undeployed or replaced) while handling the request; call again"
            )
        if graceful:
            if replica.connection is not None:
                replica.connection.shutdown()
            grace_s = self.settings.timeouts.graceful_shutdown_s
            try:
                async with asyncio.timeout(grace_s):
                    await process.wait()
                    return
            except TimeoutError:
                logger.warning("%s did not stop within %.0f s; terminating it", replica.label, grace_s)
        process.terminate()
        try:
            async with asyncio.timeout(2):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _stop_deployment(self, live: LiveDeployment, *, graceful: bool = True) -> None:
        live.stopping = True
        live.ready = []
        live.wake_all()  # whoever waits for a slot looks again, and finds the deployment gone
        for task in list(live.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        replicas = list(live.replicas.values())
        await asyncio.gather(
            *(self._stop_replica(replica, graceful=graceful) for replica in replicas), return_exceptions=True
        )

    async def _set_state(self, live: LiveDeployment, state: DeploymentState, reason: str | None) -> None:
        live.state, live.reason = state, reason
        route = self.prefixes.get(live.spec.route_prefix)
        if state is DeploymentState.active and live.replaces:
            # Blue/green: switch traffic in this same step, so no call sees both versions, then drain the old.
            retired, live.replaces = live.replaces, []
            for version_id in retired:
                old = self.deployments.get(version_id)
                old_route = self.prefixes.get(old.spec.route_prefix) if old is not None else None
                if old is not None and old_route is not None:
                    old_route.remove(old.version.number)
                self._background_task(self.undeploy(version_id, reason=f"replaced by version {live.version.number}"))
        if route is not None:
            route.refresh()
        try:
            await asyncio.to_thread(self.store.set_deployment_state, live.version.version_id, state, reason)
        except StorageUnavailable as exc:  # a full or read-only disk: one line, not a traceback
            logger.error("Deployment [%s] state %s could not be saved: %s", live.label, state.value, exc.message)
        except Exception:
            logger.exception("Deployment [%s] state %s could not be saved", live.label, state.value)

    def log_tail(self, service_name: str, replica_id: str, lines: int = 12) -> str:
        path = self.log_path(service_name, replica_id)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    # -- health --------------------------------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        interval_s = self.settings.timeouts.health_interval_s
        while True:
            await asyncio.sleep(interval_s)
            for live in list(self.deployments.values()):
                for replica in list(live.replicas.values()):
                    if replica.state is ReplicaState.ready and replica.connection is not None and not replica.checking:
                        replica.checking = True
                        self._spawn(live, self._check(live, replica))

    async def _check(self, live: LiveDeployment, replica: Replica) -> None:
        """Ping one replica. One that does not answer in time is replaced at once (its loop is stuck: SIGSTOP, a
        deadlock); one whose `check_health()` fails `health_failures` times in a row is replaced too."""
        assert replica.connection is not None
        timeout_s = self.settings.timeouts.health_timeout_s
        try:
            report = await replica.connection.ping(timeout_s)
        except TimeoutError:
            self._replace_unhealthy(live, replica, not_answering(timeout_s))
            return
        except Exception:
            return  # a dead connection: the replica's own task sees the exit and replaces it
        finally:
            replica.checking = False
        if report.passed:
            replica.health_failures = 0
            return
        replica.health_failures += 1
        limit = self.settings.health_failures
        logger.warning(
            "%s of service [%s] failed a health check (%d of %d in a row): %s",
            replica.label,
            live.label,
            replica.health_failures,
            limit,
            report.message,
        )
        if replica.health_failures >= limit:
            self._replace_unhealthy(live, replica, failing_checks(replica.health_failures, report.message))

    def _replace_unhealthy(self, live: LiveDeployment, replica: Replica, reason: str) -> None:
        """Out of the ready list first, so no new call picks it; then killed. Its calls in flight fail with
        `replica_crashed` saying why; `_run_replica` sees the exit and starts a replacement."""
        if replica.state is not ReplicaState.ready or live.stopping:
            return  # stopped or replaced meanwhile
        replica.state, replica.reason = ReplicaState.failed, reason
        if replica.connection is not None:
            replica.connection.stopped_because = (
                f"{replica.label} {reason}, so it was replaced while handling the request; retrying may succeed"
            )
        live.refresh_ready()
        logger.warning("%s of service [%s] %s; replacing it", replica.label, live.label, reason)
        if replica.process is not None:
            replica.process.kill()

    # -- time limit ----------------------------------------------------------------------------------------------

    async def _enforce_time_limit(self, live: LiveDeployment) -> None:
        """Tear the deployment down (INACTIVE, with the reason) once its service's `time_limit` has passed since it
        was deployed. Runs as one of its tasks, so stopping the deployment cancels it."""
        expiry = time_limit.expires_at(live.spec, live.deployment)
        # In steps of at most an hour, against the wall clock `deployed_at` is on (it may jump; the loop's does not).
        while (time_left_s := time_limit.time_left_s(expiry) or 0.0) > 0:
            await asyncio.sleep(min(time_left_s, 3600.0))
        version_id = live.version.version_id
        if self.deployments.get(version_id) is not live or live.stopping:
            return
        reason = time_limit.expired_reason(live.spec, live.deployment)
        logger.info("Deployment [%s]: %s; tearing it down", live.label, reason)
        # In the background: undeploying cancels this deployment's tasks, this one included.
        self._background_task(self.undeploy(version_id, reason=reason))
