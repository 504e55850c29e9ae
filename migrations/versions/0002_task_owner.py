"""task owner and tenant (OAuth bearer tokens)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases: nullable columns need no table copy.
    op.add_column("tasks", sa.Column("owner", sa.String(length=255), nullable=True))
    op.add_column("tasks", sa.Column("tenant", sa.String(length=255), nullable=True))
    op.create_index("ix_tasks_owner_tenant_seq", "tasks", ["owner", "tenant", "seq"])


def downgrade() -> None:
    op.drop_index("ix_tasks_owner_tenant_seq", table_name="tasks")
    if op.get_bind().dialect.name == "sqlite":
        # Not a batch copy: dropping the old ``tasks`` table with foreign keys on would
        # cascade into ``task_tags`` and delete every tag. SQLite >= 3.35 drops columns.
        op.execute("ALTER TABLE tasks DROP COLUMN tenant")
        op.execute("ALTER TABLE tasks DROP COLUMN owner")
    else:
        op.drop_column("tasks", "tenant")
        op.drop_column("tasks", "owner")
