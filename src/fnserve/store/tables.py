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
    sa.Column("init_shown", sa.Text, nullable=True),  # JSON {"args", "kwargs"} as /info shows them
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

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_id", sa.String(40), primary_key=True),
    sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False, index=True),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # sha256 of the secret; the secret is not kept
    sa.Column("hint", sa.String(16), nullable=False),  # its first characters, so people can tell tokens apart
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
