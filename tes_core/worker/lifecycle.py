"""What the workers do with tasks: submit, finish cancelling, and reconcile.

The database is the source of truth and queue messages are only hints, so
every step here is idempotent: it re-reads the task, acts only if the task is
still in the state the step expects, and claims it with a guarded UPDATE.
The reconcile pass finds what a crash left half done and finishes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, update

from ..backends.base import Backend, Observation, failed
from ..db import Database, utcnow
from ..models import tasks
from ..reporting import DatabaseReporter
from ..states import ACTIVE, State
from ..store import active_records, ids_in_states, load_record
from .registry import WorkerRegistry, acquire_lease, release_lease

log = logging.getLogger(__name__)

RECONCILE_LEASE = "reconcile"


class Messages(Protocol):
    """Re-sending messages from the reconcile pass."""

    def submit(self, task_id: str) -> None: ...

    def cancel(self, task_id: str) -> None: ...


class Lifecycle:
    """Worker-side task handling, shared by the Dramatiq actors."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        reporter: DatabaseReporter,
        registry: WorkerRegistry,
        messages: Messages,
        stale_after: float = 30.0,
    ) -> None:
        self.db = db
        self.backend = backend
        self.reporter = reporter
        self.registry = registry
        self.messages = messages
        self.stale_after = stale_after

    @property
    def worker_id(self) -> str:
        """This worker's id."""
        return self.registry.worker_id

    # -- submit -------------------------------------------------------------------

    def submit(self, task_id: str) -> None:
        """Hand a QUEUED, unclaimed task to the backend, exactly once."""
        if not self._claim(task_id):
            return
        with self.db.read() as conn:
            record = load_record(conn, task_id)
        if record is not None and record.state == State.CANCELING:
            # Cancelled between the claim and now: this worker owns it, so it finishes it.
            self.finish_cancel(task_id)
            return
        if record is None or record.state != State.QUEUED:
            return
        try:
            ref = self.backend.submit(record)
        except Exception as exc:
            log.warning("task %s: backend %s refused it", task_id, self.backend.name,
                        exc_info=True)
            self.reporter.report(
                failed(task_id, f"submitting to backend '{self.backend.name}' failed: {exc}")
            )
            return
        ref = ref or self.backend.name
        self.reporter.report(Observation(task_id=task_id, backend_ref=ref))
        if self.reporter.current_state(task_id) in (State.CANCELING, State.CANCELED):
            # A cancel raced the submission and may have found nothing to stop yet.
            self.backend.cancel(replace(record, backend_ref=ref, state=State.CANCELING.value))

    def _claim(self, task_id: str) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.state == State.QUEUED.value,
                    tasks.c.backend_ref.is_(None),
                )
                .values(backend_ref="claimed", worker_id=self.worker_id, updated_at=utcnow())
            )
        return result.rowcount == 1

    # -- cancel -------------------------------------------------------------------

    def finish_cancel(self, task_id: str) -> None:
        """Have the backend clean up a CANCELING task, then mark it CANCELED."""
        with self.db.read() as conn:
            record = load_record(conn, task_id)
        if record is None or record.state != State.CANCELING:
            return
        try:
            done = (
                True
                if record.backend_ref is None
                else self.backend.cancel(record) is not False
            )
        except Exception as exc:
            log.warning("task %s: cancel failed", task_id, exc_info=True)
            self.reporter.report(
                failed(task_id, f"cancelling on backend '{self.backend.name}' failed: {exc}")
            )
            return
        if done:
            self.reporter.report(
                Observation(task_id=task_id, state=State.CANCELED, end_time=datetime.now(UTC))
            )

    # -- reconcile ------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass over unfinished tasks; only one runs at a time across all workers."""
        if not acquire_lease(self.db, RECONCILE_LEASE, self.worker_id, ttl=300):
            return
        started = time.monotonic()
        try:
            self._resend_lost()
            if self.backend.runs_in_worker:
                self._recover_orphans()
            else:
                self._poll_backend()
        finally:
            release_lease(self.db, RECONCILE_LEASE, self.worker_id)
        log.debug("reconcile pass took %.3fs", time.monotonic() - started)

    def _resend_lost(self) -> None:
        """QUEUED never submitted, CANCELING never finished: send their messages again."""
        stale = utcnow() - timedelta(seconds=self.stale_after)
        with self.db.read() as conn:
            waiting = ids_in_states(conn, [State.QUEUED], older_than=stale)
            canceling = ids_in_states(conn, [State.CANCELING], older_than=stale)
        for row in waiting:
            if row.backend_ref is None:
                log.info("task %s was never submitted; submitting it again", row.id)
                self.messages.submit(row.id)
            elif (
                row.backend_ref == "claimed"
                and not self.backend.runs_in_worker
                and not self.registry.is_alive(row.worker_id)
                and self._take_over(row.id, row.worker_id, release=True)
            ):
                log.info("task %s: its worker died while submitting it; submitting again",
                         row.id)
                self.messages.submit(row.id)
        for row in canceling:
            if row.backend_ref is None or not self.backend.runs_in_worker or not (
                self.registry.is_alive(row.worker_id)
            ):
                log.info("task %s is still CANCELING; finishing the cancel", row.id)
                self.finish_cancel(row.id)

    def _recover_orphans(self) -> None:
        """Tasks whose worker died: requeue those not started, recover the rest."""
        with self.db.read() as conn:
            rows = ids_in_states(conn, [s for s in ACTIVE if s != State.CANCELING])
        alive: dict[str, bool] = {}
        for row in rows:
            owner = row.worker_id
            if owner is None or row.backend != self.backend.name:
                continue
            if owner not in alive:
                alive[owner] = self.registry.is_alive(owner)
            if alive[owner]:
                continue
            if row.state == State.QUEUED:
                if self._take_over(row.id, owner, release=True):
                    log.info("task %s: its worker %s died before starting it; requeued",
                             row.id, owner)
                    self.messages.submit(row.id)
                continue
            if not self._take_over(row.id, owner, release=False):
                continue
            with self.db.read() as conn:
                record = load_record(conn, row.id)
            if record is None:
                continue
            log.warning("task %s: its worker %s died while it was %s; recovering",
                        row.id, owner, row.state)
            observation = self.backend.recover(record)
            if observation is not None:
                self.reporter.report(observation)

    def _take_over(self, task_id: str, dead_owner: str, *, release: bool) -> bool:
        values: dict[str, object] = {"updated_at": utcnow()}
        if release:
            values.update(worker_id=None, backend_ref=None)
        else:
            values["worker_id"] = self.worker_id
        with self.db.write() as conn:
            result = conn.execute(
                update(tasks)
                .where(and_(tasks.c.id == task_id, tasks.c.worker_id == dead_owner))
                .values(**values)
            )
        return result.rowcount == 1

    def _poll_backend(self) -> None:
        with self.db.read() as conn:
            records = [
                r for r in active_records(conn, self.backend.name)
                if r.backend_ref not in (None, "claimed") and r.state != State.CANCELING
            ]
        if not records:
            return
        try:
            observations = list(self.backend.poll(records))
        except Exception:
            log.warning("polling backend %s failed; will retry", self.backend.name,
                        exc_info=True)
            return
        for observation in observations:
            self.reporter.report(observation)
