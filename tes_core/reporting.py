"""Applying what backends observe to the database, through the state machine."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, bindparam, select, text

from .backends.base import Observation
from .db import Database, patiently, utcnow
from .models import tasks
from .plugins import Hooks
from .statecache import StateCache
from .states import State, can_transition, is_terminal
from .store import SQLITE_DATETIME, lock_for_update, set_fields, transition
from .tasklogs import fold_logs, is_empty

log = logging.getLogger(__name__)
T = TypeVar("T")

# One UPDATE per batch whatever its size: the rows travel as one JSON parameter, so the
# statement text never changes (drivers and SQLAlchemy cache it) and no parameter limit
# applies. Each row is guarded by the state and version it was read at, so a concurrent
# change (a cancel, a worker's report) always wins over the batch.
_BATCH_SET = (
    " UPDATE tasks SET state = v.state, logs = v.logs,"
    " backend_ref = COALESCE(v.backend_ref, tasks.backend_ref), updated_at = :now"
)
_BATCH_GUARD = (
    " WHERE tasks.id = v.id AND tasks.state = v.old_state"
    " AND tasks.updated_at = v.old_updated RETURNING tasks.id"
)
_BATCH_UPDATE_POSTGRESQL = text(
    _BATCH_SET
    + " FROM json_to_recordset(CAST(:rows AS json)) AS v(id text, old_state text,"
    " old_updated timestamp, state text, logs text, backend_ref text)"
    + _BATCH_GUARD
).bindparams(bindparam("now", type_=DateTime()))
_BATCH_UPDATE_SQLITE = text(
    "WITH v AS (SELECT json_extract(value, '$.id') AS id,"
    " json_extract(value, '$.old_state') AS old_state,"
    " json_extract(value, '$.old_updated') AS old_updated,"
    " json_extract(value, '$.state') AS state, json_extract(value, '$.logs') AS logs,"
    " json_extract(value, '$.backend_ref') AS backend_ref FROM json_each(:rows))"
    + _BATCH_SET + " FROM v" + _BATCH_GUARD
).bindparams(bindparam("now", type_=DateTime()))


_IDS_PER_QUERY = 500
"""Task ids per ``IN (...)`` of :meth:`DatabaseReporter.states_of` (within every driver's
parameter limit)."""


@dataclass(frozen=True)
class StoredTask:
    """What applying observations needs of a stored task, as read in one batch."""

    id: str
    state: str
    logs: str
    """The JSON text of the task's ``logs``."""
    updated_at: datetime
    """The version the batched write is guarded by: a row changed since is left alone."""


@dataclass
class _Change:
    """The result of folding observations into one stored task."""

    original: str
    """The state the task was read in."""
    state: str
    logs: str
    backend_ref: str | None = None
    changed: bool = False
    lines: list[str] = field(default_factory=list)
    """System log lines added, for :meth:`Hooks.task_logged`."""
    ended: list[dict[str, Any]] = field(default_factory=list)
    """Executors that ended, for :meth:`Hooks.task_logged`."""


class DatabaseReporter:
    """The core's :class:`~tes_core.backends.base.TaskReporter`: observations become rows."""

    def __init__(self, db: Database, hooks: Hooks, states: StateCache | None = None) -> None:
        self.db = db
        self.hooks = hooks
        self.states = states or StateCache(sole_writer=False)
        self.patience = 0.0
        """Seconds to keep retrying while the database is unreachable (set in workers, so a
        database restart delays what a running task reports instead of losing it)."""

    def _patiently(self, call: Callable[[], T], what: str) -> T:
        if self.patience <= 0:
            return call()
        return patiently(call, timeout=self.patience, what=what)

    def report(self, observation: Observation) -> bool:
        """Apply ``observation``; return ``False`` when its state change is not allowed."""
        return self._patiently(
            lambda: self._report(observation), f"reporting on task {observation.task_id}"
        )

    def _report(self, observation: Observation) -> bool:
        changed_from: str | None = None
        lines: list[str] = []
        ended: list[dict[str, Any]] = []
        new_state: State | None = None
        with self.db.write() as conn:
            row = lock_for_update(conn, observation.task_id)
            if row is None or is_terminal(row.state):
                return False  # a finished task's state and logs never change again
            new_state = State(observation.state) if observation.state else None
            moves = new_state is not None and new_state.value != row.state
            if moves and not can_transition(row.state, new_state):
                log.info(
                    "task %s: ignoring %s -> %s (not allowed)",
                    observation.task_id, row.state, new_state,
                )
                return False
            values: dict[str, object] = {}
            if not is_empty(observation):
                values["logs"], lines, ended = fold_logs(row.logs, observation)
            if observation.backend_ref:
                values["backend_ref"] = observation.backend_ref
            if moves:
                if not transition(conn, observation.task_id, new_state, values=values):
                    return False
                changed_from = row.state
            elif values:
                set_fields(conn, observation.task_id, **values)
        if lines or ended:
            self.hooks.task_logged(observation.task_id, lines, ended)
        if changed_from is not None and new_state is not None:
            self._announce(observation.task_id, changed_from, new_state.value)
        return True

    def report_batch(
        self, observations: Sequence[Observation], stored: Mapping[str, StoredTask]
    ) -> int:
        """Apply many observations in one statement; return how many tasks changed.

        ``stored`` is what the caller read of those tasks in the same pass. The write
        is one guarded UPDATE for the whole batch: a task whose row changed since it
        was read (its ``updated_at`` moved) is left as it is, and the next pass sees
        it again. Observations about tasks not in ``stored`` are ignored.
        """
        changes: dict[str, _Change] = {}
        for observation in observations:
            task = stored.get(observation.task_id)
            if task is None:
                continue
            change = changes.get(task.id) or _Change(task.state, task.state, task.logs)
            if _fold(change, observation):
                changes[task.id] = change
        changes = {task_id: c for task_id, c in changes.items() if c.changed}
        if not changes:
            return 0
        applied = self._patiently(
            lambda: self._write_batch(changes, stored), "reporting a batch of tasks"
        )
        for task_id in applied:
            change = changes[task_id]
            if change.lines or change.ended:
                self.hooks.task_logged(task_id, change.lines, change.ended)
            if change.state != change.original:
                self._announce(task_id, change.original, change.state)
        return len(applied)

    def _write_batch(
        self, changes: Mapping[str, _Change], stored: Mapping[str, StoredTask]
    ) -> list[str]:
        rows = json.dumps([
            {
                "id": task_id,
                "old_state": stored[task_id].state,
                "old_updated": stored[task_id].updated_at.strftime(SQLITE_DATETIME),
                "state": change.state,
                "logs": change.logs,
                "backend_ref": change.backend_ref,
            }
            for task_id, change in changes.items()
        ])
        with self.db.write() as conn:
            statement = (
                _BATCH_UPDATE_POSTGRESQL if conn.dialect.name == "postgresql"
                else _BATCH_UPDATE_SQLITE
            )
            return list(conn.execute(statement, {"rows": rows, "now": utcnow()}).scalars())

    def _announce(self, task_id: str, old_state: str, new_state: str) -> None:
        self.states.forget(task_id)
        log.info("task %s: %s -> %s", task_id, old_state, new_state)
        self.hooks.task_state_changed(task_id, old_state, new_state)

    def current_state(self, task_id: str) -> str | None:
        """The task's state as stored now."""
        return self._patiently(lambda: self._current_state(task_id), f"reading task {task_id}")

    def _current_state(self, task_id: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).scalar()

    def states_of(self, task_ids: Collection[str]) -> dict[str, str]:
        """The stored state of each of ``task_ids`` that exists, a few queries for all."""
        ids = list(task_ids)
        return self._patiently(lambda: self._states_of(ids), "reading task states")

    def _states_of(self, task_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.db.read() as conn:
            for start in range(0, len(task_ids), _IDS_PER_QUERY):
                chunk = task_ids[start:start + _IDS_PER_QUERY]
                found.update(conn.execute(
                    select(tasks.c.id, tasks.c.state).where(tasks.c.id.in_(chunk))
                ).all())
        return found


def _fold(change: _Change, observation: Observation) -> bool:
    """Apply one observation to ``change`` as :meth:`DatabaseReporter.report` would."""
    if is_terminal(change.state):
        return False
    new_state = State(observation.state) if observation.state else None
    moves = new_state is not None and new_state.value != change.state
    if moves and not can_transition(change.state, new_state):
        log.info("task %s: ignoring %s -> %s (not allowed)",
                 observation.task_id, change.state, new_state)
        return False
    if not is_empty(observation):
        change.logs, lines, ended = fold_logs(change.logs, observation)
        change.lines += lines
        change.ended += ended
        change.changed = True
    if observation.backend_ref:
        change.backend_ref = observation.backend_ref
    if moves and new_state is not None:
        change.state = new_state.value
        change.changed = True
    return True
