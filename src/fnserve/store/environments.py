"""Environments as the store keeps them: the named ones users create, and the one each version runs with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fnserve.errors import NotFound
from fnserve.store.functions import as_utc, utcnow
from fnserve.store.tables import environments, versions


@dataclass(frozen=True)
class EnvironmentRecord:
    """A named environment: a requirement set and a Python version that services name with `env="NAME"`."""

    name: str
    requirements: list[str]
    python: str
    created_at: datetime
    updated_at: datetime

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requirements": self.requirements,
            "python": self.python,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _environment(row: Any) -> EnvironmentRecord:
    return EnvironmentRecord(
        name=row.name,
        requirements=orjson.loads(row.requirements),
        python=row.python,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class EnvironmentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, name: str, requirements: list[str], python: str) -> EnvironmentRecord:
        """Create the environment `name`, or replace its packages (versions already made keep theirs)."""
        now = utcnow()
        values = {"requirements": orjson.dumps(requirements).decode(), "python": python, "updated_at": now}
        with self.engine.begin() as connection:
            updated = connection.execute(
                environments.update().where(environments.c.name == name).values(**values)
            ).rowcount
            if not updated:
                connection.execute(environments.insert().values(name=name, created_at=now, **values))
        return self.get(name)

    def get(self, name: str) -> EnvironmentRecord:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(environments).where(environments.c.name == name)).first()
        if row is None:
            raise NotFound(
                f"No environment named {name!r}; create it with `fnserve env create {name} -r requirements.txt`, "
                "or list them with `fnserve env ls`"
            )
        return _environment(row)

    def list(self) -> list[EnvironmentRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(environments).order_by(environments.c.name)).all()
        return [_environment(row) for row in rows]

    def delete(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as connection:
            connection.execute(environments.delete().where(environments.c.name == name))

    def set_version_environment(self, version_id: str, environment: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                versions.update()
                .where(versions.c.version_id == version_id)
                .values(environment=orjson.dumps(environment).decode())
            )
