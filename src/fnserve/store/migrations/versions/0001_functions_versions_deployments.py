"""Functions, their immutable versions, and the deployments of versions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("function_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("versions_created", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "versions",
        sa.Column("version_id", sa.String(40), primary_key=True),
        sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("code_kind", sa.String(16), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("entrypoint", sa.String(300), nullable=True),
        sa.Column("init_sha256", sa.String(64), nullable=True),
        sa.Column("api", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("function_id", "number", name="uq_versions_function_number"),
    )
    op.create_index("ix_versions_function_id", "versions", ["function_id"])
    op.create_table(
        "deployments",
        sa.Column("deployment_id", sa.String(40), primary_key=True),
        sa.Column("version_id", sa.String(40), sa.ForeignKey("versions.version_id"), nullable=False, unique=True),
        sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deployments_function_id", "deployments", ["function_id"])


def downgrade() -> None:
    op.drop_table("deployments")
    op.drop_table("versions")
    op.drop_table("functions")
