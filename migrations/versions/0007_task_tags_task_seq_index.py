"""index of task tags by their task (the event journal's task facts, cascading deletes)

The journal reads a task's tags with ``task_tags JOIN ... ON task_seq = tasks.seq``; the
primary key and ``ix_task_tags_key_seq`` both start with ``key``, so without this index
that lookup scans every tag of every task (and so does deleting a task's tags).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_tags_task_seq", "task_tags", ["task_seq"])


def downgrade() -> None:
    op.drop_index("ix_task_tags_task_seq", table_name="task_tags")
