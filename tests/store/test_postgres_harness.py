"""The PostgreSQL harness itself: a real cluster starts, takes SQL through SQLAlchemy and psycopg, and stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_engine_uses_postgresql_through_psycopg(engine: sa.Engine) -> None:
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")


def test_select_1_returns_1(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar_one() == 1


def test_table_can_be_created_written_read_and_dropped(engine: sa.Engine) -> None:
    """
    1. Create a table and insert two rows in one transaction.
    2. Read them back in a new connection.
    3. Drop the table; the database no longer lists it.
    """
    metadata = sa.MetaData()
    table = sa.Table(
        "harness_check",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"name": "a"}, {"name": "b"}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.name).order_by(table.c.id)).scalars().all() == ["a", "b"]
    finally:
        metadata.drop_all(engine)
    assert "harness_check" not in sa.inspect(engine).get_table_names()
