"""Queued jobs, uploaded assets, and the servers that hold jobs (for reclaiming a dead server's work).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("function_id", sa.String(40), nullable=False),
        sa.Column("version_id", sa.String(40), nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("route", sa.String(320), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("path_params", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("assets", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("retried", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("queued_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("retain_until", sa.Float, nullable=True),
        sa.Column("output", sa.LargeBinary, nullable=True),
        sa.Column("output_asset", sa.String(40), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("owner", sa.String(40), nullable=True),
        sa.Column("delivered", sa.Boolean, nullable=False),
    )
    op.create_index("ix_jobs_function_state", "jobs", ["function_id", "state"])
    op.create_index("ix_jobs_owner_state", "jobs", ["owner", "state"])
    op.create_index("ix_jobs_retain_until", "jobs", ["retain_until"])
    op.create_table(
        "assets",
        sa.Column("asset_id", sa.String(40), primary_key=True),
        sa.Column("function_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("uploaded_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.create_table(
        "servers",
        sa.Column("server_id", sa.String(40), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("servers")
    op.drop_table("assets")
    op.drop_index("ix_jobs_retain_until", table_name="jobs")
    op.drop_index("ix_jobs_owner_state", table_name="jobs")
    op.drop_index("ix_jobs_function_state", table_name="jobs")
    op.drop_table("jobs")
