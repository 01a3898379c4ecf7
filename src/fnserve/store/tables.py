"""The store's tables. Changing one means adding a migration under `migrations/versions/`."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

functions = sa.Table(
    "functions",
    metadata,
    sa.Column("function_id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list of strings
    # Version numbers are never reused, even after the newest version is deleted: pinned callers rely on them.
    sa.Column("versions_created", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("version_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # ServiceSpec JSON
    sa.Column("code_kind", sa.String(16), nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("entrypoint", sa.String(300), nullable=True),
    sa.Column("init_sha256", sa.String(64), nullable=True),
    sa.Column("api", sa.Text, nullable=True),  # the API description its replicas reported
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("function_id", "number", name="uq_versions_function_number"),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(40), primary_key=True),
    sa.Column("version_id", sa.String(40), sa.ForeignKey("versions.version_id"), nullable=False, unique=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("spec", sa.Text, nullable=False),  # DeploymentSpec JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),  # the last (re)deploy; newest is current
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
