"""task event journal (GET /events)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "task_events",
        sa.Column("seq", seq, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("tenant", sa.String(255)),
        sa.Column("data", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_task_events_time", "task_events", ["time"])


def downgrade() -> None:
    op.drop_index("ix_task_events_time", table_name="task_events")
    op.drop_table("task_events")
