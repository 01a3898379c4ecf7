"""Invocation tokens (hashed), and the initializer's arguments as `/info` shows them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(40), primary_key=True),
        sa.Column("function_id", sa.String(40), sa.ForeignKey("functions.function_id"), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_function_id", "tokens", ["function_id"])
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("init_shown", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("init_shown")
    op.drop_index("ix_tokens_function_id", table_name="tokens")
    op.drop_table("tokens")
