"""Functions, versions and deployments as the store keeps them.

A function is a name; each upload adds an immutable version; a version runs when it has a
deployment that is not INACTIVE (nor DISABLED: kept, not run, while its owner has disabled the function).
`StateStore` is synchronous SQLAlchemy (async callers run it in a thread): SQLite in WAL mode by default,
PostgreSQL (or any SQLAlchemy URL) otherwise. The schema is brought up to date by the Alembic migrations when the
store opens.
"""

from __future__ import annotations

import enum
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.disk import storage_error
from fnserve.envs.requirements import EnvironmentSpec
from fnserve.errors import NotFound, ServiceExists, ServiceNotFound
from fnserve.home import make_private
from fnserve.spec import DeploymentSpec, ServiceSpec
from fnserve.store.migrate import upgrade
from fnserve.store.tables import deployments, functions, versions


class DeploymentState(enum.StrEnum):
    """States of a deployment, as NVCF names them on the wire."""

    inactive = "INACTIVE"
    building = "BUILDING"  # its environment is being built; replicas start after
    deploying = "DEPLOYING"
    active = "ACTIVE"
    error = "ERROR"
    disabled = "DISABLED"  # its function is disabled: no replicas, its spec kept; enabling starts it as it was


RUNNING_STATES = (DeploymentState.building, DeploymentState.deploying, DeploymentState.active)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class FunctionRecord:
    function_id: str
    name: str
    description: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None  # disabled by its owner since then; None: enabled

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True)
class VersionRecord:
    version_id: str
    function_id: str
    number: int
    spec: ServiceSpec
    code_kind: str  # "archive" (a project folder) or "pickle" (sent from Python)
    code_sha256: str
    entrypoint: str | None
    init_sha256: str | None
    init_shown: dict[str, Any] | None  # {"args": [...], "kwargs": {...}} as /info shows them
    api: dict[str, Any] | None
    created_at: datetime
    environment: EnvironmentSpec | None = None  # None: its replicas run in the server's own environment


@dataclass(frozen=True)
class DeploymentRecord:
    deployment_id: str
    version_id: str
    function_id: str
    state: DeploymentState
    reason: str | None
    spec: DeploymentSpec
    created_at: datetime
    deployed_at: datetime
    updated_at: datetime


def _function(row: Any) -> FunctionRecord:
    return FunctionRecord(
        function_id=row.function_id,
        name=row.name,
        description=row.description,
        tags=orjson.loads(row.tags),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        disabled_at=as_utc(row.disabled_at) if row.disabled_at is not None else None,
    )


def _version(row: Any) -> VersionRecord:
    return VersionRecord(
        version_id=row.version_id,
        function_id=row.function_id,
        number=row.number,
        spec=ServiceSpec.model_validate_json(row.spec),
        code_kind=row.code_kind,
        code_sha256=row.code_sha256,
        entrypoint=row.entrypoint,
        init_sha256=row.init_sha256,
        init_shown=orjson.loads(row.init_shown) if row.init_shown else None,
        api=orjson.loads(row.api) if row.api else None,
        created_at=as_utc(row.created_at),
        environment=EnvironmentSpec.from_json(orjson.loads(row.environment)) if row.environment else None,
    )


def _deployment(row: Any) -> DeploymentRecord:
    return DeploymentRecord(
        deployment_id=row.deployment_id,
        version_id=row.version_id,
        function_id=row.function_id,
        state=DeploymentState(row.state),
        reason=row.reason,
        spec=DeploymentSpec.model_validate_json(row.spec),
        created_at=as_utc(row.created_at),
        deployed_at=as_utc(row.deployed_at),
        updated_at=as_utc(row.updated_at),
    )


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _private_sqlite_file(path: Path) -> None:
    """Make the database file 0600 before SQLite opens it (its -wal and -shm files take the database's mode), or
    make an existing one private along with them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if each.exists():
                make_private(each)


def driver_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, whatever SQLAlchemy's default driver for it is."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


class StateStore:
    """Functions, versions and deployments in a SQL database.

    Every statement that fails for lack of storage (a full or read-only disk, a failing one) raises StorageFull or
    StorageUnavailable naming the database's folder, whichever store (jobs, assets, tokens) runs it on this engine.
    """

    def __init__(self, url: str) -> None:
        url = driver_url(url)
        parsed = sa.make_url(url)
        self.location = parsed.render_as_string(hide_password=True)  # what errors name
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(str(parsed.database))
            self.location = str(path.parent)
            try:
                _private_sqlite_file(path)
            except OSError as exc:
                raise storage_error(exc, path.parent) or exc from None
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _enable_sqlite_wal)
        sa.event.listen(self.engine, "handle_error", self._storage_failure)
        upgrade(self.engine)

    def _storage_failure(self, context: sa.engine.ExceptionContext) -> None:
        """The `handle_error` hook: a storage failure is raised as our own error, in place of SQLAlchemy's."""
        error = storage_error(context.original_exception, self.location)
        if error is not None:
            raise error from None

    def close(self) -> None:
        self.engine.dispose()

    # -- functions and versions ---------------------------------------------------------------------------

    def add_version(
        self,
        spec: ServiceSpec,
        *,
        code_kind: str,
        code_sha256: str,
        entrypoint: str | None,
        init_sha256: str | None,
        init_shown: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        environment: EnvironmentSpec | None = None,
    ) -> tuple[FunctionRecord, VersionRecord]:
        """Register a version of the function `spec.name`, creating the function on its first version."""
        # Two first registrations of one name at once both try to create the function: the unique name refuses
        # the second, which tries again and finds it.
        attempts = 0
        while True:
            try:
                return self._add_version(
                    spec, code_kind, code_sha256, entrypoint, init_sha256, init_shown, tags, environment
                )
            except sa.exc.IntegrityError:
                attempts += 1
                if attempts == 5:
                    raise

    def _add_version(
        self,
        spec: ServiceSpec,
        code_kind: str,
        code_sha256: str,
        entrypoint: str | None,
        init_sha256: str | None,
        init_shown: dict[str, Any] | None,
        tags: list[str] | None,
        environment: EnvironmentSpec | None,
    ) -> tuple[FunctionRecord, VersionRecord]:
        now = utcnow()
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(functions).where(functions.c.name == spec.name)).first()
            if row is None:
                function_id = new_id("fn")
                connection.execute(
                    functions.insert().values(
                        function_id=function_id,
                        name=spec.name,
                        description=spec.description,
                        tags=orjson.dumps(tags or []).decode(),
                        versions_created=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
                number = 1
            else:
                function_id = row.function_id
                values: dict[str, Any] = {
                    "description": spec.description,
                    "updated_at": now,
                    # Incremented in the database, under the row's lock, so concurrent registrations never share it.
                    "versions_created": functions.c.versions_created + 1,
                }
                if tags is not None:
                    values["tags"] = orjson.dumps(tags).decode()
                number = connection.execute(
                    functions.update()
                    .where(functions.c.function_id == function_id)
                    .values(**values)
                    .returning(functions.c.versions_created)
                ).scalar_one()
            version_id = new_id("ver")
            connection.execute(
                versions.insert().values(
                    version_id=version_id,
                    function_id=function_id,
                    number=number,
                    spec=spec.model_dump_json(),
                    code_kind=code_kind,
                    code_sha256=code_sha256,
                    entrypoint=entrypoint,
                    init_sha256=init_sha256,
                    init_shown=orjson.dumps(init_shown).decode() if init_shown is not None else None,
                    environment=orjson.dumps(environment.to_json()).decode() if environment is not None else None,
                    created_at=now,
                )
            )
        return self.get_function(function_id), self.get_version(function_id, version_id)

    def get_function(self, name_or_id: str) -> FunctionRecord:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(functions).where(
                    sa.or_(functions.c.function_id == name_or_id, functions.c.name == name_or_id)
                )
            ).first()
        if row is None:
            raise ServiceNotFound(f"No function named {name_or_id!r}; list them with `fnserve ls`")
        return _function(row)

    def disable_function(self, function_id: str, reason: str) -> FunctionRecord:
        """Disable a function, and mark each of its deployments that is not INACTIVE as DISABLED with `reason`, in one
        transaction: a server that stops halfway never brings one back. Idempotent (`disabled_at` stays the first)."""
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(
                functions.update()
                .where(functions.c.function_id == function_id, functions.c.disabled_at.is_(None))
                .values(disabled_at=now)
            )
            connection.execute(
                deployments.update()
                .where(
                    deployments.c.function_id == function_id,
                    deployments.c.state.not_in([DeploymentState.inactive.value, DeploymentState.disabled.value]),
                )
                .values(state=DeploymentState.disabled.value, reason=reason, updated_at=now)
            )
        return self.get_function(function_id)

    def enable_function(self, function_id: str) -> FunctionRecord:
        """Enable a function again. Its DISABLED deployments stay so until the supervisor starts them."""
        with self.engine.begin() as connection:
            connection.execute(
                functions.update().where(functions.c.function_id == function_id).values(disabled_at=None)
            )
        return self.get_function(function_id)

    def list_functions(self) -> list[FunctionRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(functions).order_by(functions.c.created_at)).all()
        return [_function(row) for row in rows]

    def list_versions(self, function_id: str) -> list[VersionRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(versions).where(versions.c.function_id == function_id).order_by(versions.c.number)
            ).all()
        return [_version(row) for row in rows]

    def get_version(self, function_id: str, version: str | int) -> VersionRecord:
        """A version by id or by number (`3` or `"3"`), within one function."""
        # ASCII digits only (`int("²")` fails), and no number beyond the INTEGER column, where the driver would fail.
        is_number = isinstance(version, int) or (str(version).isascii() and str(version).isdigit())
        row = None
        if not is_number or 0 < int(version) < 2**31:
            condition = versions.c.number == int(version) if is_number else versions.c.version_id == version
            with self.engine.connect() as connection:
                row = connection.execute(
                    sa.select(versions).where(versions.c.function_id == function_id, condition)
                ).first()
        if row is None:
            raise NotFound(f"Function {function_id} has no version {version!r}; list them with `fnserve versions`")
        return _version(row)

    def set_version_api(self, version_id: str, api: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                versions.update().where(versions.c.version_id == version_id).values(api=orjson.dumps(api).decode())
            )

    def delete_version(self, version: VersionRecord) -> None:
        """Remove a version that is not deployed (`ServiceExists` 409 otherwise)."""
        with self.engine.begin() as connection:
            deployment = connection.execute(
                sa.select(deployments).where(deployments.c.version_id == version.version_id)
            ).first()
            if deployment is not None and deployment.state != DeploymentState.inactive:
                raise ServiceExists(
                    f"version {version.number} is deployed ({deployment.state}); undeploy it first "
                    f"(DELETE /v1/deployments/functions/{version.function_id}/versions/{version.version_id})"
                )
            connection.execute(deployments.delete().where(deployments.c.version_id == version.version_id))
            connection.execute(versions.delete().where(versions.c.version_id == version.version_id))

    # -- deployments ---------------------------------------------------------------------------------------------

    def create_deployment(
        self,
        version: VersionRecord,
        spec: DeploymentSpec,
        *,
        state: DeploymentState = DeploymentState.deploying,
        reason: str | None = None,
    ) -> DeploymentRecord:
        """Deploy a version: DEPLOYING (or DISABLED, to start when its function is enabled). A version already
        deployed (not INACTIVE) is a conflict (409)."""
        now = utcnow()
        values = {
            "state": state.value,
            "reason": reason,
            "spec": spec.model_dump_json(),
            "deployed_at": now,
        }
        with self.engine.begin() as connection:
            existing = connection.execute(
                sa.select(deployments).where(deployments.c.version_id == version.version_id)
            ).first()
            if existing is not None and existing.state != DeploymentState.inactive:
                raise ServiceExists(
                    f"version {version.number} is already deployed ({existing.state}); update it with PUT, "
                    "or undeploy it first"
                )
            if existing is None:
                connection.execute(
                    deployments.insert().values(
                        deployment_id=new_id("dep"),
                        version_id=version.version_id,
                        function_id=version.function_id,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
            else:
                connection.execute(
                    deployments.update()
                    .where(deployments.c.version_id == version.version_id)
                    .values(updated_at=now, **values)
                )
        deployment = self.get_deployment(version.version_id)
        assert deployment is not None
        return deployment

    def get_deployment(self, version_id: str) -> DeploymentRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(deployments).where(deployments.c.version_id == version_id)).first()
        return None if row is None else _deployment(row)

    def list_deployments(self, function_id: str | None = None) -> list[DeploymentRecord]:
        query = sa.select(deployments).order_by(deployments.c.created_at)
        if function_id is not None:
            query = query.where(deployments.c.function_id == function_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_deployment(row) for row in rows]

    def update_deployment(self, version_id: str, spec: DeploymentSpec) -> DeploymentRecord:
        with self.engine.begin() as connection:
            connection.execute(
                deployments.update()
                .where(deployments.c.version_id == version_id)
                .values(spec=spec.model_dump_json(), updated_at=utcnow())
            )
        deployment = self.get_deployment(version_id)
        assert deployment is not None
        return deployment

    def set_deployment_state(self, version_id: str, state: DeploymentState, reason: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                deployments.update()
                .where(deployments.c.version_id == version_id)
                .values(state=state.value, reason=reason, updated_at=utcnow())
            )
