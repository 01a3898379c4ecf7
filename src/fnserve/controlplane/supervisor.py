"""The supervisor: starts, health-checks, replaces and stops the replicas of every deployed service.

The store holds what should run; `LiveService` holds what runs now. Every step catches and logs
its own errors so one failing service never stops the others. Replicas are started through a
`Backend`; the supervisor never knows which one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnserve.backends.base import Backend, ReplicaLaunch, ReplicaProcess
from fnserve.errors import ServiceExists
from fnserve.gateway.connection import InitFailed, ReplicaConnection, ReplicaListener
from fnserve.gateway.router import PrefixTable, ReplicaPicker, ServiceRoutes
from fnserve.settings import Settings
from fnserve.spec import ServiceSpec
from fnserve.store import ArtifactStore, ServiceRecord, ServiceState, StateStore

logger = logging.getLogger("fnserve.supervisor")

MAX_CONSECUTIVE_FAILURES = 5
MAX_RESTART_BACKOFF_S = 10.0


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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def label(self) -> str:
        return f"Replica [{self.replica_id} pid={self.pid}]"

    def describe(self) -> dict[str, Any]:
        return {
            "replica_id": self.replica_id,
            "state": self.state.value,
            "pid": self.pid,
            "in_flight": self.connection.in_flight if self.connection is not None else 0,
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "exit_code": self.exit_code,
            "reason": self.reason,
        }


class LiveService:
    """One deployed service as it runs now: its routes and its replicas. The gateway reads it per request."""

    def __init__(self, record: ServiceRecord) -> None:
        self.record = record
        self.spec = record.spec
        self.routes = ServiceRoutes(record.spec)
        self.replicas: dict[str, Replica] = {}
        self.ready: list[ReplicaConnection] = []  # what the gateway picks from; kept in step with replicas
        self.picker: ReplicaPicker[ReplicaConnection] = ReplicaPicker()
        self.state = record.state
        self.reason = record.reason
        self.stopping = False
        self.consecutive_failures = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def refresh_ready(self) -> None:
        self.ready = [
            replica.connection
            for replica in self.replicas.values()
            if replica.state is ReplicaState.ready and replica.connection is not None and replica.connection.is_open
        ]

    @property
    def ready_count(self) -> int:
        return len(self.ready)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        artifacts: ArtifactStore,
        backend: Backend,
        listener: ReplicaListener,
    ) -> None:
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.backend = backend
        self.listener = listener
        self.services: dict[str, LiveService] = {}  # by service name
        self.prefixes: PrefixTable[LiveService] = PrefixTable()
        self._health_task: asyncio.Task[None] | None = None

    # -- lifecycle of the supervisor itself --------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back every service that was ACTIVE or DEPLOYING when the server last stopped."""
        records = await asyncio.to_thread(self.store.list_services)
        for record in records:
            if record.state in (ServiceState.active, ServiceState.deploying):
                logger.info("Service [%s] was %s; starting it again", record.name, record.state.value)
                try:
                    await self.deploy(record)
                except Exception:
                    logger.exception("Service [%s] could not be restored", record.name)
        self._health_task = asyncio.create_task(self._health_loop())

    async def close(self) -> None:
        """Stop every replica (gracefully, then by force), leaving the store's states for the next start."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await asyncio.gather(*(self._stop_service(live) for live in list(self.services.values())))
        self.services.clear()

    # -- deploy and teardown -------------------------------------------------------------------------------------

    async def deploy(self, record: ServiceRecord) -> LiveService:
        """Run `record`'s replicas. Returns at once; the state moves to ACTIVE or ERROR in the background.

        A service already running under this name is stopped first; a different service that owns the same
        route prefix is a conflict (`ServiceExists`).
        """
        self.check_prefix(record.spec)
        previous = self.services.get(record.name)
        if previous is not None:
            await self._stop_service(previous)
        live = LiveService(record)
        self.services[record.name] = live
        self.prefixes.set(record.spec.route_prefix, live)
        if record.spec.replicas == 0:
            await self._set_state(live, ServiceState.active, None)
        else:
            await self._set_state(live, ServiceState.deploying, None)
            for _ in range(record.spec.replicas):
                self._spawn(live, self._run_replica(live))
        return live

    def check_prefix(self, spec: ServiceSpec) -> None:
        """Raise ServiceExists when another running service owns `spec`'s route prefix."""
        owner = self.prefixes.get(spec.route_prefix)
        if owner is not None and owner.spec.name != spec.name:
            raise ServiceExists(
                f"route prefix {spec.route_prefix} is already used by service {owner.spec.name!r}; "
                "pass route_prefix=... to @fs.service, or tear that service down first"
            )

    async def teardown(self, name: str) -> None:
        """Stop the service's replicas (in-flight calls finish first) and mark it INACTIVE."""
        live = self.services.pop(name, None)
        record = await asyncio.to_thread(self.store.get_service, name)
        if live is not None:
            self.prefixes.remove(live.spec.route_prefix)
            await self._stop_service(live)
        await asyncio.to_thread(self.store.set_state, record.service_id, ServiceState.inactive, "torn down")

    def live(self, name: str) -> LiveService | None:
        return self.services.get(name)

    # -- replicas -------------------------------------------------------------------------------------------------

    def _spawn(self, live: LiveService, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    def _launch(self, live: LiveService, replica_id: str) -> ReplicaLaunch:
        record = live.record
        init_path = self.artifacts.path(record.init_sha256) if record.init_sha256 else None
        common: dict[str, Any] = {
            "replica_id": replica_id,
            "service_name": record.name,
            "connect": self.listener.path,
            "resources": record.spec.resources,
            "log_path": self.log_path(record.name, replica_id),
            "init_path": init_path,
            "max_threads": self.settings.replica_threads,
        }
        if record.code_kind == "pickle":
            return ReplicaLaunch(pickle_path=self.artifacts.path(record.code_sha256), **common)
        return ReplicaLaunch(
            code_dir=self.artifacts.unpacked(record.code_sha256), entrypoint=record.entrypoint, **common
        )

    def log_path(self, service_name: str, replica_id: str) -> Path:
        return self.settings.home / "logs" / service_name / f"{replica_id}.log"

    async def _run_replica(self, live: LiveService) -> None:
        """Start one replica, serve until it exits, then replace it unless the service is stopping."""
        replica = Replica(replica_id=f"{live.spec.name}-{uuid.uuid4().hex[:6]}")
        live.replicas[replica.replica_id] = replica
        try:
            await self._start(live, replica)
        except InitFailed as exc:
            await self._replica_failed(live, replica, exc.message, exc.traceback_tail)
            return
        except Exception as exc:
            logger.exception("%s of service [%s] could not start", replica.label, live.spec.name)
            await self._replica_failed(live, replica, f"{type(exc).__name__}: {exc}", "")
            return
        live.consecutive_failures = 0
        if live.state is not ServiceState.active and live.ready_count >= live.spec.replicas:
            await self._set_state(live, ServiceState.active, None, api=replica.api)
        assert replica.process is not None
        replica.exit_code = await replica.process.wait()
        was_ready = replica.state is ReplicaState.ready
        replica.state = ReplicaState.stopped
        live.refresh_ready()
        del live.replicas[replica.replica_id]
        if live.stopping or not was_ready:
            return
        logger.warning(
            "%s of service [%s] died (exit code %s); starting a replacement",
            replica.label,
            live.spec.name,
            replica.exit_code,
        )
        self._spawn(live, self._run_replica(live))

    async def _start(self, live: LiveService, replica: Replica) -> None:
        timeouts = self.settings.timeouts
        hello = self.listener.expect(replica.replica_id)
        try:
            replica.process = await self.backend.start(self._launch(live, replica.replica_id))
            exited: asyncio.Future[int] = asyncio.ensure_future(replica.process.wait())
            try:
                async with asyncio.timeout(timeouts.replica_connect_s):
                    await asyncio.wait([hello, exited], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                if not hello.done():
                    raise InitFailed(
                        f"the replica exited with code {exited.result()} before connecting; "
                        f"see {self.log_path(live.spec.name, replica.replica_id)}",
                        self.log_tail(live.spec.name, replica.replica_id),
                    )
                connection, _pid = hello.result()
                connection.label = replica.label
                connection.on_lost = live.refresh_ready
                replica.connection = connection
                async with asyncio.timeout(timeouts.replica_init_s):
                    api = await connection.initialized
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
        if live.stopping:
            self._stop_replica_soon(replica)
            return
        live.refresh_ready()
        logger.info(
            "%s of service [%s] is ready in %.0f ms",
            replica.label,
            live.spec.name,
            (replica.ready_at - replica.started_at) * 1000,
        )

    async def _replica_failed(self, live: LiveService, replica: Replica, message: str, tail: str) -> None:
        replica.state = ReplicaState.failed
        replica.reason = message
        live.replicas.pop(replica.replica_id, None)
        if replica.process is not None:
            replica.process.kill()
            replica.exit_code = await replica.process.wait()
        if live.stopping:
            return
        live.consecutive_failures += 1
        logger.error("%s of service [%s] failed to start: %s", replica.label, live.spec.name, message)
        # An initializer that raises fails the same way every time: report it rather than loop.
        if tail or live.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            reason = f"replica failed to start: {message}" + (f"\n{tail}" if tail else "")
            await self._set_state(live, ServiceState.error, reason)
            live.stopping = True
            await self._stop_service(live)
            return
        backoff_s = min(0.5 * 2 ** (live.consecutive_failures - 1), MAX_RESTART_BACKOFF_S)
        await asyncio.sleep(backoff_s)
        if not live.stopping:
            self._spawn(live, self._run_replica(live))

    def _stop_replica_soon(self, replica: Replica) -> None:
        asyncio.ensure_future(self._stop_replica(replica))

    async def _stop_replica(self, replica: Replica) -> None:
        """Ask nicely (SHUTDOWN lets in-flight calls finish), then SIGTERM, then SIGKILL."""
        process = replica.process
        if process is None:
            return
        replica.state = ReplicaState.stopping
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

    async def _stop_service(self, live: LiveService) -> None:
        live.stopping = True
        live.ready = []
        for task in list(live.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        replicas = list(live.replicas.values())
        await asyncio.gather(*(self._stop_replica(replica) for replica in replicas), return_exceptions=True)

    async def _set_state(
        self, live: LiveService, state: ServiceState, reason: str | None, *, api: dict[str, Any] | None = None
    ) -> None:
        live.state, live.reason = state, reason
        try:
            live.record = await asyncio.to_thread(self.store.set_state, live.record.service_id, state, reason, api=api)
        except Exception:
            logger.exception("Service [%s] state %s could not be saved", live.spec.name, state.value)

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
            for live in list(self.services.values()):
                for replica in list(live.replicas.values()):
                    if replica.state is ReplicaState.ready and replica.connection is not None:
                        self._spawn(live, self._check(live, replica))

    async def _check(self, live: LiveService, replica: Replica) -> None:
        assert replica.connection is not None
        try:
            await replica.connection.ping(self.settings.timeouts.health_timeout_s)
        except TimeoutError:
            logger.warning(
                "%s of service [%s] did not answer a health check within %.0f s; replacing it",
                replica.label,
                live.spec.name,
                self.settings.timeouts.health_timeout_s,
            )
            if replica.process is not None:
                replica.process.kill()
        except Exception:
            pass  # a dead connection: the replica's own task sees the exit and replaces it
