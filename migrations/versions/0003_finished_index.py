"""index of finished tasks by the time they finished (retention)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FINISHED_SQL = (
    "state IN ('CANCELED', 'COMPLETE', 'EXECUTOR_ERROR', 'PREEMPTED', 'SYSTEM_ERROR')"
)
"""``tes_core.models.FINISHED_SQL`` as it was when this revision was written."""


def upgrade() -> None:
    op.create_index(
        "ix_tasks_finished", "tasks", ["updated_at"],
        sqlite_where=sa.text(FINISHED_SQL), postgresql_where=sa.text(FINISHED_SQL),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_finished", table_name="tasks")
