"""SQLAlchemy tables. The database is the source of truth for every task.

Task documents are stored as JSON text; what lists filter on (state, name,
tags, creation order) has its own indexed columns so a page is a keyset
range scan, never a full scan.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .states import TERMINAL
from .submitter import TAG_PREFIX

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Byte-order comparison, so that ``name >= prefix AND name < next`` is exactly a prefix match
# (SQLite's default BINARY collation already is).
NameText = Text().with_variant(Text(collation="C"), "postgresql")

FINISHED_SQL = "state IN (" + ", ".join(f"'{s.value}'" for s in sorted(TERMINAL)) + ")"
"""Finished tasks, as SQL: the condition of the partial index ``ix_tasks_finished``. A query
must say it in these very words for SQLite to use that index."""

SUBMITTER_TAG_COLUMNS: dict[str, str] = {
    TAG_PREFIX + "name": "submitter_tag_name",
    TAG_PREFIX + "workflow-id": "submitter_workflow_id",
    TAG_PREFIX + "workflow-name": "submitter_workflow_name",
    TAG_PREFIX + "workflow-stage": "submitter_workflow_stage",
    TAG_PREFIX + "root-workflow-id": "submitter_root_workflow_id",
}
"""The ``ms-submitter-*`` tags kept in columns of the task row instead of ``task_tags`` rows
(tag key -> column): a create writes no tag row for them, and tag filters and the event
journal read them from these columns. Whoever set the tag (a submitter plugin or the task's
author), its value is here; other ``ms-submitter-*`` keys stay ordinary tag rows."""

_INDEXED_SUBMITTER_COLUMNS = ("submitter_tag_name", "submitter_workflow_id",
                              "submitter_root_workflow_id")
"""The submitter columns a filter finds through an index (newest first); a filter on the
others (workflow name, stage) walks tasks newest first or rides another filter's index."""


def _submitter_index(column: str) -> Index:
    """``(column, seq)`` for the tasks that have the tag: a filter on it is a keyset range."""
    where = text(f"{column} IS NOT NULL")
    return Index(f"ix_tasks_{column}_seq", column, "seq",
                 sqlite_where=where, postgresql_where=where)


# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Task(Base):
    """One TES task: its submitted document, its state and its logs."""

    __tablename__ = "tasks"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    """Creation order; newest-first pages are keyset ranges on it."""
    id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str | None] = mapped_column(NameText)
    """Indexed with byte order (collation "C" on PostgreSQL) so a name prefix is a range."""
    creation_time: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    """The normalised task document as JSON, without id, state, creation_time and logs."""
    logs: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    """JSON list of tesTaskLog, one per attempt."""
    backend: Mapped[str] = mapped_column(String(64), nullable=False)
    backend_ref: Mapped[str | None] = mapped_column(Text)
    """The backend's own handle for the task, once submitted."""
    worker_id: Mapped[str | None] = mapped_column(String(64))
    """The worker that owns the task's run on backends that run inside a worker."""
    submitter: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(255))
    """The subject of the bearer token that created the task; ``NULL`` without OAuth."""
    tenant: Mapped[str | None] = mapped_column(String(255))
    """The token's tenant (``""`` when it names none); ``NULL`` without OAuth."""
    submitter_tag_name: Mapped[str | None] = mapped_column(Text)
    """The ``ms-submitter-name`` tag (see :data:`SUBMITTER_TAG_COLUMNS`)."""
    submitter_workflow_id: Mapped[str | None] = mapped_column(Text)
    """The ``ms-submitter-workflow-id`` tag."""
    submitter_workflow_name: Mapped[str | None] = mapped_column(Text)
    """The ``ms-submitter-workflow-name`` tag."""
    submitter_workflow_stage: Mapped[str | None] = mapped_column(Text)
    """The ``ms-submitter-workflow-stage`` tag."""
    submitter_root_workflow_id: Mapped[str | None] = mapped_column(Text)
    """The ``ms-submitter-root-workflow-id`` tag."""

    __table_args__ = (
        Index("ix_tasks_state_seq", "state", "seq"),
        Index("ix_tasks_name", "name"),
        # A user's listing is a keyset range on this index, newest first.
        Index("ix_tasks_owner_tenant_seq", "owner", "tenant", "seq"),
        # Finished tasks by the time they finished (a finished task's row never changes
        # again), for retention. Partial: creating and running tasks never touch it.
        Index("ix_tasks_finished", "updated_at",
              sqlite_where=text(FINISHED_SQL), postgresql_where=text(FINISHED_SQL)),
        *(_submitter_index(column) for column in _INDEXED_SUBMITTER_COLUMNS),
    )


class TaskTag(Base):
    """One tag of a task, kept apart so tag filters use an index.

    The primary key is the index a ``tag_key``/``tag_value`` filter scans, newest
    first; on SQLite the table is that index (WITHOUT ROWID), so each tag costs
    two b-tree inserts, not four. The ``ms-submitter-*`` tags of
    :data:`SUBMITTER_TAG_COLUMNS` are not here but in columns of the task row.
    """

    __tablename__ = "task_tags"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    task_seq: Mapped[int] = mapped_column(
        SeqType, ForeignKey("tasks.seq", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (
        Index("ix_task_tags_key_seq", "key", "task_seq"),
        # A task's tags (the event journal's task facts, cascading deletes).
        Index("ix_task_tags_task_seq", "task_seq"),
        {"sqlite_with_rowid": False},
    )


class Worker(Base):
    """A running worker process; its heartbeat tells the reconcile loop it is alive."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class Lease(Base):
    """A named, expiring lock held in the database (one reconcile loop at a time)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class TaskEvent(Base):
    """One entry of the task event journal (``GET /events``): a state change or a new log
    line, kept for ``TES_EVENTS_KEEP_SECONDS`` so a client that reconnects resumes.

    ``seq`` is the event id clients see (``Last-Event-ID``); AUTOINCREMENT on SQLite, so an
    id is never reused even after every row has expired.
    """

    __tablename__ = "task_events"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    task_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    """``state`` or ``log``: the SSE event name."""
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    """The task's state when the event happened (what the ``state`` filter compares)."""
    name: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    """The task's tags as JSON (what the ``tag_key``/``tag_value`` filters compare)."""
    owner: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text, nullable=False)
    """The event's ``data:`` line, JSON, exactly as sent."""

    __table_args__ = (
        Index("ix_task_events_time", "time"),
        {"sqlite_autoincrement": True},
    )


class Provision(Base):
    """One ``POST /provision`` request and how far it got; a worker moves it step by step.

    ``progress`` is the provisioner's own record (JSON), stored after every step, so a
    worker that takes over after a crash goes on from the last finished step.
    """

    __tablename__ = "provisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    """The provisioner's name (the backend it provisions for)."""
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    """``QUEUED``, ``RUNNING``, ``COMPLETE`` or ``ERROR``."""
    request: Mapped[str] = mapped_column(Text, nullable=False)
    """The request as the provisioner's ``start`` returned it, JSON."""
    progress: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    """Which step failed and why, in ``ERROR``."""
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    """Who asked (the token's subject); ``NULL`` without OAuth."""

    __table_args__ = (Index("ix_provisions_state", "state"),)


tasks = Task.__table__
task_tags = TaskTag.__table__
workers = Worker.__table__
leases = Lease.__table__
task_events = TaskEvent.__table__
provisions = Provision.__table__
