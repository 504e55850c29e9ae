"""Writing task events to the ``task_events`` table (the journal ``GET /events`` reads).

A :class:`EventJournal` is registered as a plugin of the process that builds a core: its
``tes_task_state_changed`` and ``tes_task_logged`` implementations append one row per
event, then wake the readers (this process's hub at once, other processes through Redis
pub/sub when a Redis broker is configured; otherwise they find it at their next poll).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy

from ..db import Database, driver_sql, rfc3339, utcnow
from ..models import SUBMITTER_TAG_COLUMNS
from ..store import SQLITE_DATETIME

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("tes")

_TASK_FACTS_SQL = (
    "SELECT t.state, t.name, t.owner, t.tenant, g.key, g.value, "
    + ", ".join(f"t.{column}" for column in SUBMITTER_TAG_COLUMNS.values())
    + " FROM tasks t LEFT JOIN task_tags g ON g.task_seq = t.seq WHERE t.id = ?"
)
_INSERT_SQL = (
    "INSERT INTO task_events (time, task_id, kind, state, name, tags, owner, tenant, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REMEMBERED_TASKS = 10_000


@dataclass(frozen=True)
class TaskFacts:
    """What never changes about a task and what every event of it carries or is filtered by."""

    name: str | None
    tags: dict[str, str]
    owner: str | None
    tenant: str | None


class EventJournal:
    """Appends events to the journal; a plugin object (hook implementations below)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._facts: OrderedDict[str, TaskFacts] = OrderedDict()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def on_write(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each event written (a hub's or a publisher's wake-up)."""
        self._listeners.append(listener)

    @hookimpl
    def tes_task_state_changed(self, task_id: str, new_state: str) -> None:
        """Journal a ``state`` event."""
        facts, _ = self.task(task_id)
        if facts is None:
            return
        now = utcnow()
        data = {"task_id": task_id, "name": facts.name, "state": new_state,
                "time": rfc3339(now), "tags": facts.tags}
        self._write(now, task_id, "state", new_state, facts, [data])

    @hookimpl
    def tes_task_logged(
        self, task_id: str, system_logs: list[str], executors: list[dict[str, Any]]
    ) -> None:
        """Journal one ``log`` event per executor end and per system log line."""
        facts, state = self.task(task_id, fresh_state=True)
        if facts is None or state is None:
            return
        now = utcnow()
        time = rfc3339(now)
        items = [{"task_id": task_id, "time": time, "executor": end} for end in executors]
        items += [{"task_id": task_id, "time": time, "system_log": line} for line in system_logs]
        self._write(now, task_id, "log", state, facts, items)

    def task(self, task_id: str, fresh_state: bool = False) -> tuple[TaskFacts | None, str | None]:
        """The task's facts (remembered) and, when ``fresh_state`` or read now, its current
        state; ``(None, None)`` when there is no such task."""
        with self._lock:
            facts = self._facts.get(task_id)
        if facts is not None and not fresh_state:
            return facts, None
        with self.db.read() as conn:
            rows = conn.exec_driver_sql(
                driver_sql(conn.dialect, _TASK_FACTS_SQL), (task_id,)
            ).all()
        if not rows:
            return None, None
        state, name, owner, tenant = rows[0][:4]
        tags = {row[4]: row[5] for row in rows if row[4] is not None}
        tags.update((key, value) for key, value in zip(SUBMITTER_TAG_COLUMNS, rows[0][6:],
                                                        strict=True) if value is not None)
        facts = TaskFacts(name, dict(sorted(tags.items())), owner, tenant)
        with self._lock:
            self._facts[task_id] = facts
            while len(self._facts) > _REMEMBERED_TASKS:
                self._facts.popitem(last=False)
        return facts, state

    def _write(
        self, now: Any, task_id: str, kind: str, state: str, facts: TaskFacts,
        items: list[dict[str, Any]],
    ) -> None:
        stamp = now.strftime(SQLITE_DATETIME) if self.db.is_sqlite else now
        tags = json.dumps(facts.tags, separators=(",", ":"))
        with self.db.driver_write() as tx:
            for data in items:
                tx.execute(_INSERT_SQL, (
                    stamp, task_id, kind, state, facts.name, tags, facts.owner, facts.tenant,
                    json.dumps(data, separators=(",", ":")),
                ))
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.warning("waking event readers failed", exc_info=True)
