"""ms-submitter-* tags in columns of the task row instead of task_tags rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:30:00.000000

Upgrade moves the existing tag rows of these keys into the new columns and deletes them;
downgrade writes them back as tag rows. A task's stored document (what GET returns) is not
touched either way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = {
    "ms-submitter-name": "submitter_tag_name",
    "ms-submitter-workflow-id": "submitter_workflow_id",
    "ms-submitter-workflow-name": "submitter_workflow_name",
    "ms-submitter-workflow-stage": "submitter_workflow_stage",
    "ms-submitter-root-workflow-id": "submitter_root_workflow_id",
}
"""``tes_core.models.SUBMITTER_TAG_COLUMNS`` as it was when this revision was written."""
INDEXED = ("submitter_tag_name", "submitter_workflow_id", "submitter_root_workflow_id")


def upgrade() -> None:
    for column in COLUMNS.values():
        op.add_column("tasks", sa.Column(column, sa.Text(), nullable=True))
    for key, column in COLUMNS.items():
        op.execute(sa.text(
            f"UPDATE tasks SET {column} = (SELECT g.value FROM task_tags g"
            f" WHERE g.task_seq = tasks.seq AND g.key = :key)"
            f" WHERE EXISTS (SELECT 1 FROM task_tags g WHERE g.task_seq = tasks.seq"
            f" AND g.key = :key)"
        ).bindparams(key=key))
    op.execute(sa.text("DELETE FROM task_tags WHERE key IN :keys").bindparams(
        sa.bindparam("keys", list(COLUMNS), expanding=True)))
    for column in INDEXED:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_tasks_{column}_seq", "tasks", [column, "seq"],
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for key, column in COLUMNS.items():
        op.execute(sa.text(
            f"INSERT INTO task_tags (task_seq, key, value) SELECT seq, :key, {column}"
            f" FROM tasks WHERE {column} IS NOT NULL"
        ).bindparams(key=key))
    for column in INDEXED:
        op.drop_index(f"ix_tasks_{column}_seq", table_name="tasks")
    for column in reversed(list(COLUMNS.values())):
        if op.get_bind().dialect.name == "sqlite":
            # Not a batch copy (it would cascade-delete every tag); SQLite >= 3.35 drops columns.
            op.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
        else:
            op.drop_column("tasks", column)
