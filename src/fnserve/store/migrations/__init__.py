"""Alembic migrations of the state store; `fnserve.store.migrate.upgrade` runs them at server start."""
