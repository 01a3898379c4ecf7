"""Services as the store keeps them: one row per service name with its spec, code and state.

`StateStore` is synchronous SQLAlchemy; async callers run it in a thread. SQLite (WAL) by
default, any SQLAlchemy URL otherwise.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.errors import ServiceNotFound
from fnserve.spec import ServiceSpec


class ServiceState(enum.StrEnum):
    """States of a deployment, as NVCF names them on the wire."""

    inactive = "INACTIVE"
    deploying = "DEPLOYING"
    active = "ACTIVE"
    error = "ERROR"


metadata = sa.MetaData()

services_table = sa.Table(
    "services",
    metadata,
    sa.Column("service_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("code_kind", sa.String(16), nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("entrypoint", sa.String(300), nullable=True),
    sa.Column("init_sha256", sa.String(64), nullable=True),
    sa.Column("api", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceRecord:
    service_id: str
    name: str
    state: ServiceState
    reason: str | None
    spec: ServiceSpec
    code_kind: str  # "archive" (a project folder) or "pickle" (sent from Python)
    code_sha256: str
    entrypoint: str | None
    init_sha256: str | None
    api: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


def _row_to_record(row: Any) -> ServiceRecord:
    return ServiceRecord(
        service_id=row.service_id,
        name=row.name,
        state=ServiceState(row.state),
        reason=row.reason,
        spec=ServiceSpec.model_validate_json(row.spec),
        code_kind=row.code_kind,
        code_sha256=row.code_sha256,
        entrypoint=row.entrypoint,
        init_sha256=row.init_sha256,
        api=orjson.loads(row.api) if row.api else None,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class StateStore:
    """Services and their states, in a SQL database."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _enable_sqlite_wal)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def save_service(
        self,
        spec: ServiceSpec,
        *,
        code_kind: str,
        code_sha256: str,
        entrypoint: str | None,
        init_sha256: str | None,
    ) -> ServiceRecord:
        """Create the service, or give an existing one of that name new code and spec. State → DEPLOYING."""
        now = utcnow()
        values = {
            "state": ServiceState.deploying.value,
            "reason": None,
            "spec": spec.model_dump_json(),
            "code_kind": code_kind,
            "code_sha256": code_sha256,
            "entrypoint": entrypoint,
            "init_sha256": init_sha256,
            "api": None,
            "updated_at": now,
        }
        with self.engine.begin() as connection:
            existing = connection.execute(
                sa.select(services_table.c.service_id).where(services_table.c.name == spec.name)
            ).first()
            if existing is None:
                service_id = f"svc-{uuid.uuid4().hex[:16]}"
                connection.execute(
                    services_table.insert().values(service_id=service_id, name=spec.name, created_at=now, **values)
                )
            else:
                service_id = existing.service_id
                connection.execute(
                    services_table.update().where(services_table.c.service_id == service_id).values(**values)
                )
        return self.get_service(service_id)

    def get_service(self, name_or_id: str) -> ServiceRecord:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(services_table).where(
                    sa.or_(services_table.c.service_id == name_or_id, services_table.c.name == name_or_id)
                )
            ).first()
        if row is None:
            raise ServiceNotFound(f"No service named {name_or_id!r}; list services with `fnserve ls`")
        return _row_to_record(row)

    def list_services(self) -> list[ServiceRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(services_table).order_by(services_table.c.created_at)).all()
        return [_row_to_record(row) for row in rows]

    def set_state(
        self, service_id: str, state: ServiceState, reason: str | None = None, *, api: dict[str, Any] | None = None
    ) -> ServiceRecord:
        values: dict[str, Any] = {"state": state.value, "reason": reason, "updated_at": utcnow()}
        if api is not None:
            values["api"] = orjson.dumps(api).decode()
        with self.engine.begin() as connection:
            connection.execute(
                services_table.update().where(services_table.c.service_id == service_id).values(**values)
            )
        return self.get_service(service_id)

    def delete_service(self, service_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(services_table.delete().where(services_table.c.service_id == service_id))
