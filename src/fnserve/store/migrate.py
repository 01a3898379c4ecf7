"""Bringing a database to the current schema: Alembic migrations from code (no alembic.ini to ship), loaded only
when a database needs one.

Most starts find the database current, and a new database gets the schema from `tables.metadata` in one step and
is stamped as current (Alembic's own recipe for new databases). Only a database from an older fnserve runs the
migrations, so the server does not carry Alembic (and the ORM it pulls in, about 16 MiB) for its whole life.
`tests/store/test_migrate.py` checks that both ways give the same schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fnserve.store.tables import metadata

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration in migrations/versions; tests/store/test_migrate.py checks it against Alembic's head.
HEAD = "0005"
VERSION_TABLE = "alembic_version"  # Alembic's own bookkeeping table and column


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks. Idempotent: a current database is left as it is."""
    with engine.begin() as connection:
        current = current_revision(connection)
        if current == HEAD:
            return
        if current is None and not sa.inspect(connection).get_table_names():
            create_current(connection)
            return
        run_migrations(connection)


def current_revision(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def create_current(connection: Connection) -> None:
    """An empty database: every table as `tables.py` declares it, stamped with the newest revision."""
    metadata.create_all(connection)
    connection.execute(
        sa.text(
            f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
            f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"), {"head": HEAD})


def run_migrations(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
