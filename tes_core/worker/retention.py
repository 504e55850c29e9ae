"""Retention: finished tasks are removed a set time after they finished (``TES_RETENTION``).

Unset, nothing is ever removed. Set, each reconcile pass (one at a time across all
workers, under the reconcile lock) removes at most ``batch_size`` tasks that finished
(COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED, PREEMPTED) longer ago than that,
those that finished first first: the backend deletes what it keeps of each
(:meth:`~tes_core.backends.base.Backend.remove`: the local backend's task folder), then
one statement deletes their rows and, by cascade, their tags. A bounded batch keeps
every pass short; a backlog (retention just turned on) goes over the next passes.
Active tasks are never touched: the queries name finished states only.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from ..backends.base import Backend
from ..db import Database, utcnow
from ..statecache import StateCache
from ..store import delete_finished, finished_before, record_of
from ..telemetry.metrics import TASKS_REMOVED

log = logging.getLogger(__name__)


class Retention:
    """Removes finished tasks older than ``keep_for`` seconds (``None``: never)."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        states: StateCache,
        keep_for: float | None,
        batch_size: int = 500,
    ) -> None:
        self.db = db
        self.backend = backend
        self.states = states
        self.keep_for = keep_for
        self.batch_size = batch_size

    def sweep(self) -> int:
        """Remove one batch of expired tasks; return how many were removed."""
        if self.keep_for is None:
            return 0
        cutoff = utcnow() - timedelta(seconds=self.keep_for)
        with self.db.read() as conn:
            rows = finished_before(conn, cutoff, self.batch_size)
        seqs: list[int] = []
        for row in rows:
            if row.backend == self.backend.name:
                try:
                    self.backend.remove(record_of(row))
                except Exception:
                    log.warning("task %s: backend %s could not remove what it keeps of it; "
                                "keeping the task until the next pass", row.id,
                                self.backend.name, exc_info=True)
                    continue
            seqs.append(row.seq)
        with self.db.write() as conn:
            removed = delete_finished(conn, seqs)
        for task_id, state in removed:
            self.states.forget(task_id)
            TASKS_REMOVED.labels(state).inc()
        if removed:
            log.info("retention: removed %d finished tasks older than %s", len(removed),
                     timedelta(seconds=self.keep_for))
        return len(removed)
