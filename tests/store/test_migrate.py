"""The schema two ways: a new database made from `tables.py` and stamped, and one migrated step by step with Alembic,
must be the same, on SQLite and PostgreSQL; an older database is migrated; a current one never loads Alembic."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _postgres import fresh_database
from alembic.config import Config
from alembic.script import ScriptDirectory

from fnserve.store import migrate


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where empty databases are made, on each backend (see `empty_database`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db-{{}}.db"
    else:
        yield request.getfixturevalue("postgres_url")


def empty_database(new_url: str, index: int) -> str:
    return new_url.format(index) if new_url.startswith("sqlite") else fresh_database(new_url)


def schema(url: str) -> dict[str, Any]:
    """Everything the inspector sees of each table, in a comparable form."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            tables[table] = {
                # By name: a column a later migration added comes last there, in its place in tables.py.
                "columns": sorted(
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ),
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign_keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted((tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
                "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            }
        return tables
    finally:
        engine.dispose()


def test_head_is_alembics_newest_revision() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD


def test_a_new_database_has_the_schema_the_migrations_make(new_url: str) -> None:
    created, migrated = empty_database(new_url, 1), empty_database(new_url, 2)
    engine = sa.create_engine(created)
    migrate.upgrade(engine)  # empty: made from tables.py and stamped
    engine.dispose()
    engine = sa.create_engine(migrated)
    with engine.begin() as connection:
        migrate.run_migrations(connection)  # every migration, one by one
    engine.dispose()

    assert schema(created) == schema(migrated)
    assert set(schema(created)) >= {
        "functions",
        "versions",
        "deployments",
        "tokens",
        "jobs",
        "assets",
        "alembic_version",
    }


def test_an_older_database_is_migrated_to_the_newest_revision(new_url: str) -> None:
    from alembic import command

    url = empty_database(new_url, 3)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0002")
        with engine.connect() as connection:
            assert migrate.current_revision(connection) == "0002"
        migrate.upgrade(engine)
        with engine.connect() as connection:
            assert migrate.current_revision(connection) == migrate.HEAD
            assert sa.inspect(connection).has_table("jobs")
    finally:
        engine.dispose()


def test_functions_from_before_0005_are_enabled(tmp_path: Path) -> None:
    from alembic import command

    from fnserve.store import StateStore

    url = f"sqlite:///{tmp_path / 'fnserve.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003")
            connection.execute(
                sa.text(
                    "INSERT INTO functions (function_id, name, description, tags, versions_created, created_at, "
                    "updated_at) VALUES ('fn-1', 'greeter', '', '[]', 0, :now, :now)"
                ),
                {"now": "2025-01-31 12:00:00"},
            )
    finally:
        engine.dispose()
    store = StateStore(url)  # migrates to the head
    try:
        function = store.get_function("greeter")
        assert (function.disabled, function.disabled_at) == (False, None)
        assert store.disable_function("fn-1", "disabled by the owner").disabled
    finally:
        store.close()


def test_a_new_or_current_database_never_loads_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fnserve.db'}"
    script = (
        "import sys\nfrom fnserve.store import StateStore\n"
        f"StateStore({url!r}).close()\nStateStore({url!r}).close()\n"
        "print(sorted(name for name in ('alembic', 'sqlalchemy.orm') if name in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
