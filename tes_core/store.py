"""Reading and writing tasks in the database. No HTTP, no plugins: just SQL.

State changes go through :func:`transition`, a guarded UPDATE whose WHERE
clause allows only the sources ``tes_core.states`` permits, so two processes
racing on one task can never make an illegal move.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    TextClause,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    text,
    update,
)

from .auth.principal import Owner
from .backends.base import TaskRecord
from .db import Database, DriverTransaction, utcnow
from .models import FINISHED_SQL, SUBMITTER_TAG_COLUMNS, task_tags, tasks
from .schemas.query import ListQuery
from .states import State, sources_of

DOCUMENT_COLUMNS = (tasks.c.seq, tasks.c.id, tasks.c.state, tasks.c.creation_time,
                    tasks.c.document, tasks.c.logs)

# The statements of the hot paths, built once: building a statement and computing
# its cache key on every call cost about as much as running it (see bench/README.md).
_SUBMITTER_KEYS = tuple(SUBMITTER_TAG_COLUMNS)
_INSERT_TASK_SQL = (
    "INSERT INTO tasks (id, state, name, creation_time, updated_at, document, logs, backend,"
    " submitter, owner, tenant, " + ", ".join(SUBMITTER_TAG_COLUMNS.values()) + ") VALUES ("
    + ", ".join(["?"] * (11 + len(SUBMITTER_TAG_COLUMNS))) + ") RETURNING seq"
)
_INSERT_TASK_ONCE_SQL = _INSERT_TASK_SQL.replace(" RETURNING seq", " ON CONFLICT (id) DO NOTHING")
_INSERT_TAGS_SQL = "INSERT INTO task_tags (task_seq, key, value) VALUES "
_TAGS_PER_STATEMENT = 500
"""Tags written by one multi-row INSERT (3 parameters each, far below every driver's cap)."""
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy stores DateTime in SQLite; rows written through the driver match it."""
_GET_STATE = select(tasks.c.id, tasks.c.state).where(tasks.c.id == bindparam("task_id"))
_GET_FULL = select(*DOCUMENT_COLUMNS).where(tasks.c.id == bindparam("task_id"))
_LOAD_RECORD = select(
    *DOCUMENT_COLUMNS, tasks.c.backend_ref, tasks.c.worker_id, tasks.c.owner, tasks.c.tenant
).where(
    tasks.c.id == bindparam("task_id")
)


@dataclass(frozen=True)
class NewTask:
    """A validated, adapted task ready to be stored."""

    document: dict[str, Any]
    backend: str
    submitter: str | None = None
    logs: list[dict[str, Any]] | None = None
    owner: Owner | None = None
    """Who created the task (OAuth on); ``None`` without authentication."""

    @cached_property
    def id(self) -> str:
        """The id the task will have."""
        return new_task_id()

    @cached_property
    def encoded(self) -> tuple[str, str]:
        """The document and logs as JSON text; touch it before a write transaction
        to keep the encoding out of the time the database is locked."""
        return json.dumps(self.document, separators=(",", ":")), json.dumps(self.logs or [])


def new_task_id() -> str:
    """A fresh, unguessable task id."""
    return str(uuid.uuid4())


def split_tags(tags: dict[str, str] | None) -> tuple[list[str | None], list[tuple[str, str]]]:
    """A task's tags as stored: the values of the ``ms-submitter-*`` tags kept in columns (in
    the order of :data:`SUBMITTER_TAG_COLUMNS`, ``None`` where absent) and the other tags,
    which become ``task_tags`` rows."""
    if not tags:
        return [None] * len(_SUBMITTER_KEYS), []
    return ([tags.get(key) for key in _SUBMITTER_KEYS],
            [(key, value) for key, value in tags.items() if key not in SUBMITTER_TAG_COLUMNS])


def _task_row(task: NewTask, stamp: object, submitter_tags: list[str | None]) -> list[Any]:
    """The parameters of ``_INSERT_TASK_SQL`` (and its ``ON CONFLICT`` form) for ``task``."""
    document_json, logs_json = task.encoded
    return [
        task.id, State.QUEUED.value, task.document.get("name"), stamp, stamp, document_json,
        logs_json, task.backend, task.submitter,
        task.owner.subject if task.owner else None,
        task.owner.tenant if task.owner else None,
        *submitter_tags,
    ]


def insert_task(tx: DriverTransaction, task: NewTask) -> str:
    """Store a new QUEUED task with its tags; return its id.

    Through the driver: creating tasks is a hot path, and SQLAlchemy's statement
    and result handling cost more than the INSERTs themselves.
    """
    now = utcnow()
    stamp: object = now.strftime(SQLITE_DATETIME) if tx.dialect.name == "sqlite" else now
    submitter_tags, tags = split_tags(task.document.get("tags"))
    seq = tx.execute(_INSERT_TASK_SQL, _task_row(task, stamp, submitter_tags)).fetchone()[0]
    if tags and tx.dialect.name == "sqlite":
        # In-process, one prepared statement run per row is the cheapest.
        tx.executemany(_INSERT_TAGS_SQL + "(?, ?, ?)", [(seq, k, v) for k, v in tags])
    elif tags:
        # One multi-row INSERT, not executemany: psycopg2 runs executemany as one round
        # trip per row and psycopg 3 as a pipeline, both slower for a task's few tags.
        items = tags
        for start in range(0, len(items), _TAGS_PER_STATEMENT):
            chunk = items[start:start + _TAGS_PER_STATEMENT]
            tx.execute(
                _INSERT_TAGS_SQL + ", ".join(["(?, ?, ?)"] * len(chunk)),
                [value for key, text in chunk for value in (seq, key, text)],
            )
    return task.id


def store_task(db: Database, task: NewTask) -> str:
    """Store a new task with its tags, atomically; return its id (``POST /tasks``).

    On PostgreSQL the task and its tags go in one statement (a data-modifying CTE)
    run on its own: one round trip instead of four (BEGIN, two INSERTs, COMMIT).
    It is safe to repeat (``ON CONFLICT (id) DO NOTHING``), which lets a broken
    connection be retried. SQLite, in-process, takes the plain transaction.
    """
    submitter_tags, tags = split_tags(task.document.get("tags"))
    if db.is_sqlite or len(tags) > _TAGS_PER_STATEMENT:
        with db.driver_write() as tx:
            return insert_task(tx, task)
    params = _task_row(task, utcnow(), submitter_tags)
    insert = _INSERT_TASK_ONCE_SQL
    if tags:
        insert = (
            f"WITH t AS ({insert} RETURNING seq) INSERT INTO task_tags (task_seq, key, value)"
            " SELECT t.seq, v.key, v.value FROM t, (VALUES "
            + ", ".join(["(?, ?)"] * len(tags)) + ") AS v (key, value)"
        )
        params += [value for pair in tags for value in pair]
    db.driver_statement(insert, params)
    return task.id


def peek_state(db: Database, task_id: str) -> str | None:
    """The state of one task, or ``None``: the cheapest read there is (no transaction)."""
    row = db.point_read("SELECT state FROM tasks WHERE id = ?", (task_id,))
    return row[0] if row else None


def peek_owner(db: Database, task_id: str) -> Owner | None | bool:
    """Who owns one task: an :class:`Owner`, ``None`` for a task made without
    authentication, or ``False`` when there is no such task."""
    row = db.point_read("SELECT owner, tenant FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        return False
    return Owner(row[0], row[1] or "") if row[0] is not None else None


def get_state(conn: Connection, task_id: str) -> Row | None:
    """``(id, state)`` of one task inside a transaction, or ``None``."""
    return conn.execute(_GET_STATE, {"task_id": task_id}).first()


def get_full(conn: Connection, task_id: str) -> Row | None:
    """Everything needed to render a task in BASIC or FULL, or ``None``."""
    return conn.execute(_GET_FULL, {"task_id": task_id}).first()


def list_page(
    conn: Connection, query: ListQuery, owner: Owner | None = None, max_bytes: int | None = None
) -> tuple[list[Row], int | None]:
    """One page of tasks, newest first, and the ``seq`` to continue before (if more);
    only ``owner``'s tasks when given (a keyset range on ``ix_tasks_owner_tenant_seq``).

    With ``max_bytes``, a BASIC or FULL page stops before the stored documents and logs
    of its tasks add up to more than that (it always holds one task): their sizes are
    read first, then only the documents that fit, so a page of big tasks never loads
    more than about ``max_bytes`` into memory.
    """
    if query.view == "MINIMAL":
        return _page(conn, query, owner, (tasks.c.seq, tasks.c.id, tasks.c.state))
    if max_bytes is None:
        return _page(conn, query, owner, DOCUMENT_COLUMNS)
    octets = func.length if conn.dialect.name == "sqlite" else func.octet_length
    sizes, more = _page(
        conn, query, owner, (tasks.c.seq, (octets(tasks.c.document) + octets(tasks.c.logs)))
    )
    taken, total = 0, 0
    for row in sizes:
        total += row[1] + _RENDERED_OVERHEAD
        if taken and total > max_bytes:
            more = sizes[taken - 1].seq
            break
        taken += 1
    if not taken:
        return [], None
    wanted = [row.seq for row in sizes[:taken]]
    rows = conn.execute(
        select(*DOCUMENT_COLUMNS).where(tasks.c.seq.in_(wanted)).order_by(tasks.c.seq.desc())
    ).all()
    return rows, more


_RENDERED_OVERHEAD = 200
"""Bytes a rendered task adds to its stored document and logs (id, state, time)."""


def _page(
    conn: Connection, query: ListQuery, owner: Owner | None, columns: tuple[Any, ...]
) -> tuple[list[Row], int | None]:
    """``columns`` of one page of the tasks ``query`` matches, newest first, and the
    ``seq`` to continue before (if more). The first column must be ``tasks.c.seq``."""
    stmt, seq_column = _matching(conn, select(*columns), query, owner)
    if query.before_seq is not None:
        stmt = stmt.where(seq_column < query.before_seq)
    stmt = stmt.order_by(seq_column.desc()).limit(query.page_size + 1)
    rows = conn.execute(stmt).all()
    if len(rows) > query.page_size:
        rows = rows[: query.page_size]
        return rows, rows[-1].seq
    return rows, None


def _matching(
    conn: Connection, stmt: Select[Any], query: ListQuery, owner: Owner | None
) -> tuple[Select[Any], ColumnElement[int]]:
    """``stmt`` narrowed to the tasks ``query``'s filters (and ``owner``) match, and the
    column holding their ``seq`` to order and page on. The page cursor is not applied."""
    seq_column: ColumnElement[int] = tasks.c.seq
    tag_filters = []
    for key, value in query.tags:
        column_name = SUBMITTER_TAG_COLUMNS.get(key)
        if column_name is None:
            tag_filters.append((key, value))
        else:
            column = tasks.c[column_name]
            stmt = stmt.where(column.is_not(None) if value is None else column == value)
    if tag_filters:
        # Drive the scan from the tag index: the first pair picks candidate rows
        # newest first, the rest are checked with EXISTS.
        key, value = tag_filters.pop(0)
        lead = task_tags.alias("lead_tag")
        stmt = stmt.select_from(lead.join(tasks, tasks.c.seq == lead.c.task_seq)).where(
            lead.c.key == key
        )
        if value is not None:
            stmt = stmt.where(lead.c.value == value)
        seq_column = lead.c.task_seq
    for key, value in tag_filters:
        condition = and_(task_tags.c.task_seq == tasks.c.seq, task_tags.c.key == key)
        if value is not None:
            condition = and_(condition, task_tags.c.value == value)
        stmt = stmt.where(exists().where(condition))
    if owner is not None:
        stmt = stmt.where(tasks.c.owner == owner.subject, tasks.c.tenant == owner.tenant)
    if query.state:
        stmt = stmt.where(tasks.c.state == query.state)
    if query.name_prefix:
        stmt = stmt.where(*_name_prefix_terms(conn, query.name_prefix))
    return stmt, seq_column


def count_by_state(
    conn: Connection, query: ListQuery, owner: Owner | None, most: int
) -> tuple[dict[str, int], list[str]]:
    """How many tasks ``query``'s filters (and ``owner``) match, per state (in the order
    of :class:`State`), and the states whose count stopped at the bound ``most`` (it then
    means "at least").
    ``query.state`` and the page cursor are ignored; states with no task are left out.

    Without a name or tag filter, each state is one bounded range of
    ``ix_tasks_state_seq``: at most ``most`` entries per state, exact below that.
    With one, the newest ``most`` matching tasks are read once (through the same index
    the list would use) and grouped by state; ``capped`` then says there were more.
    Either way the cost does not grow with the number of tasks stored.
    """
    narrowed = replace(query, state=None, before_seq=None)
    if query.tags or query.name_prefix:
        stmt, seq_column = _matching(conn, select(tasks.c.state), narrowed, owner)
        newest = stmt.order_by(seq_column.desc()).limit(most).subquery()
        rows = conn.execute(
            select(newest.c.state, func.count()).group_by(newest.c.state)
        ).all()
        found_by_state = dict(rows)
        counts = {s.value: found_by_state[s.value] for s in State if s.value in found_by_state}
        return counts, list(counts) if sum(counts.values()) >= most else []
    params: dict[str, Any] = {"most": most}
    if owner is not None:
        params.update(owner=owner.subject, tenant=owner.tenant)
    rows = conn.execute(_COUNTS_OF_OWNER if owner is not None else _COUNTS, params).all()
    counts = {state: found for state, found in rows if found}
    return counts, [state for state, found in counts.items() if found >= most]


def _bounded_counts(where: str) -> TextClause:
    """One statement counting, for every state, up to ``:most`` tasks in it that match
    ``where``: a bounded range of ``ix_tasks_state_seq`` (or of the owner's index) each,
    in one round trip, its text built once."""
    return text(" UNION ALL ".join(
        f"SELECT '{state.value}' AS state, (SELECT count(*) FROM (SELECT 1 FROM tasks"
        f" WHERE state = '{state.value}'{where} LIMIT :most) AS bounded) AS found"
        for state in State
    ))


_COUNTS = _bounded_counts("")
_COUNTS_OF_OWNER = _bounded_counts(" AND owner = :owner AND tenant = :tenant")


COMMON_PREFIX_ROWS = 2000
"""A name prefix matching at least this many tasks is walked newest first, not indexed."""


def _name_prefix_terms(conn: Connection, prefix: str) -> list[ColumnElement[bool]]:
    """``name`` in the range of strings starting with ``prefix``.

    A rare prefix is found through the name index; a common one is faster to find
    by walking tasks newest first until a page is full. PostgreSQL's planner picks
    between the two from its statistics (kept by autovacuum). SQLite's cannot tell,
    so there we count the matches through the index (up to a bound) and, when many
    match, compare ``coalesce(name, '')``, which no index serves.
    """
    upper = _prefix_upper_bound(prefix)
    name: ColumnElement[str] = tasks.c.name
    if conn.dialect.name == "sqlite":
        bounds = "name >= :low" + (" AND name < :high" if upper is not None else "")
        matches = conn.execute(
            text(f"SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {bounds} LIMIT :most)"),
            {"low": prefix, "high": upper, "most": COMMON_PREFIX_ROWS},
        ).scalar_one()
        if matches >= COMMON_PREFIX_ROWS:
            name = func.coalesce(tasks.c.name, "")
    terms = [name >= prefix]
    if upper is not None:
        terms.append(name < upper)
    return terms


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix`` (code-point order),
    so that ``prefix <= name < bound`` is exactly "name starts with prefix"."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        for bump in range(last + 1, 0x110000):
            if not 0xD800 <= bump <= 0xDFFF:  # surrogates are not storable text
                return "".join(chars) + chr(bump)
    return None


def load_record(conn: Connection, task_id: str) -> TaskRecord | None:
    """The task as a backend sees it, or ``None``."""
    row = conn.execute(_LOAD_RECORD, {"task_id": task_id}).first()
    return _record(row) if row else None


_ACTIVE_BATCH = (
    select(*DOCUMENT_COLUMNS, tasks.c.backend, tasks.c.backend_ref, tasks.c.worker_id,
           tasks.c.updated_at, tasks.c.owner, tasks.c.tenant)
    .where(tasks.c.state == bindparam("state"), tasks.c.seq > bindparam("after"))
    .order_by(tasks.c.seq)
    .limit(bindparam("size"))
)


def active_batch(conn: Connection, state: State, after_seq: int, size: int) -> list[Row]:
    """Up to ``size`` tasks in ``state`` created after ``after_seq``, oldest first.

    One keyset page of a reconcile pass: a range of the ``(state, seq)`` index, so a
    page costs the same however many tasks there are. Rows carry what the pass needs:
    the task as a backend sees it (:func:`record_of`), its backend, owner and version.
    """
    return conn.execute(
        _ACTIVE_BATCH, {"state": State(state).value, "after": after_seq, "size": size}
    ).all()


_FINISHED_COLUMNS = (*DOCUMENT_COLUMNS, tasks.c.backend, tasks.c.backend_ref, tasks.c.worker_id,
                     tasks.c.owner, tasks.c.tenant)
_FINISHED_BEFORE = (
    select(*_FINISHED_COLUMNS)
    .where(text(FINISHED_SQL), tasks.c.updated_at < bindparam("cutoff"))
    .order_by(tasks.c.updated_at)
    .limit(bindparam("size"))
)
# SQLite without statistics (nothing runs ANALYZE here) would rather read every finished
# task through ix_tasks_state_seq; PostgreSQL's planner finds the partial index itself.
_FINISHED_BEFORE_SQLITE = text(
    f"SELECT {', '.join(c.name for c in _FINISHED_COLUMNS)} FROM tasks"
    f" INDEXED BY ix_tasks_finished WHERE {FINISHED_SQL} AND updated_at < :cutoff"
    " ORDER BY updated_at LIMIT :size"
).bindparams(bindparam("cutoff", type_=tasks.c.updated_at.type)).columns(*_FINISHED_COLUMNS)


def finished_before(conn: Connection, cutoff: datetime, size: int) -> list[Row]:
    """Up to ``size`` finished tasks that finished before ``cutoff`` (naive UTC), those
    that finished first first: a range of the partial index ``ix_tasks_finished``. A
    finished task's row never changes again, so its ``updated_at`` is when it finished.
    Rows carry what :func:`record_of` needs and the task's backend."""
    statement = _FINISHED_BEFORE_SQLITE if conn.dialect.name == "sqlite" else _FINISHED_BEFORE
    return conn.execute(statement, {"cutoff": cutoff, "size": size}).all()


def delete_finished(conn: Connection, seqs: list[int]) -> list[Row]:
    """Delete these tasks if they are finished, their tags with them (``ON DELETE
    CASCADE``); return ``(id, state)`` of each one deleted."""
    if not seqs:
        return []
    return conn.execute(
        delete(tasks)
        .where(tasks.c.seq.in_(seqs), text(FINISHED_SQL))
        .returning(tasks.c.id, tasks.c.state)
    ).all()


def record_of(row: Row) -> TaskRecord:
    """The :class:`TaskRecord` of a row holding the document columns and ownership."""
    return _record(row)


def _record(row: Row) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        state=row.state,
        document=json.loads(row.document),
        creation_time=row.creation_time,
        logs=json.loads(row.logs),
        backend_ref=row.backend_ref,
        worker_id=row.worker_id,
        owner=row._mapping.get("owner"),
        tenant=row._mapping.get("tenant"),
    )


def transition(
    conn: Connection,
    task_id: str,
    new_state: State,
    *,
    expected: Iterable[State] | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a task to ``new_state`` if the state machine allows it from where it is.

    ``expected`` narrows the allowed sources further. Extra column ``values``
    are written in the same statement. Returns whether the row changed.
    """
    allowed = set(sources_of(new_state))
    if expected is not None:
        allowed &= set(expected)
    result = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.state.in_([s.value for s in allowed]))
        .values(state=new_state.value, updated_at=utcnow(), **(values or {}))
    )
    return result.rowcount == 1


def set_fields(conn: Connection, task_id: str, **values: Any) -> bool:
    """Update columns of one task without touching its state."""
    result = conn.execute(
        update(tasks).where(tasks.c.id == task_id).values(updated_at=utcnow(), **values)
    )
    return result.rowcount == 1


def lock_for_update(conn: Connection, task_id: str) -> Row | None:
    """State, logs and ownership of one task, locked until the transaction ends."""
    stmt = select(
        tasks.c.id, tasks.c.state, tasks.c.logs, tasks.c.backend_ref, tasks.c.worker_id
    ).where(tasks.c.id == task_id)
    if conn.dialect.name != "sqlite":  # SQLite's BEGIN IMMEDIATE already serialises writers
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()
