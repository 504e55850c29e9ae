"""What the workers do with tasks: submit, finish cancelling, and reconcile.

The database is the source of truth and queue messages are only hints, so
every step here is idempotent: it re-reads the task, acts only if the task is
still in the state the step expects, and claims it with a guarded UPDATE.
The reconcile pass finds what a crash left half done and finishes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import Row, select, update

from ..backends.base import (
    Backend,
    Observation,
    SigningUnavailable,
    TaskRecord,
    WorkerStopping,
    failed,
)
from ..config import ConfigError
from ..db import Database, patiently, utcnow
from ..models import tasks
from ..reporting import DatabaseReporter, StoredTask
from ..states import ACTIVE, State
from ..store import active_batch, load_record, record_of
from ..tasklogs import WAITING_REASON
from .registry import WorkerRegistry, acquire_lease, release_lease
from .retention import Retention

log = logging.getLogger(__name__)
T = TypeVar("T")

RECONCILE_LEASE = "reconcile"
SIGNING_WAIT = "waiting to sign the task's storage URLs"
"""How the waiting reason of a task whose URLs could not be signed yet begins."""
MAX_BATCH_SIZE = 5000
"""Keeps one batch (its rows in memory, one poll call, one write) short, so the lock is
renewed well within its TTL."""


def _check_batch_size(name: str, size: int) -> None:
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise ConfigError(f"{name}={size} must be between 1 and {MAX_BATCH_SIZE}")


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
        batch_size: int = 500,
        lock_ttl: float = 60.0,
        retention: Retention | None = None,
    ) -> None:
        _check_batch_size("TES_RECONCILE_BATCH_SIZE", batch_size)
        if retention is not None:
            _check_batch_size("TES_RETENTION_BATCH_SIZE", retention.batch_size)
        if lock_ttl <= 0:
            raise ConfigError(f"TES_RECONCILE_LOCK_TTL={lock_ttl:g} must be above 0")
        self.db = db
        self.backend = backend
        self.reporter = reporter
        self.registry = registry
        self.messages = messages
        self.stale_after = stale_after
        self.batch_size = batch_size
        self.lock_ttl = lock_ttl
        self.retention = retention
        """Removes expired finished tasks at the end of each pass (``TES_RETENTION``)."""
        self.after_pass: Callable[[], None] | None = None
        """Called at the end of each reconcile pass (provisioning sends again what nobody
        works on: :meth:`tes_core.provisioning.service.Provisioning.resume`)."""
        self._submitting: set[str] = set()
        """Tasks this worker is submitting right now (see :meth:`release_stale_claims`)."""
        self._submitting_lock = threading.Lock()

    @property
    def worker_id(self) -> str:
        """This worker's id."""
        return self.registry.worker_id

    # -- submit -------------------------------------------------------------------

    def submit(self, task_id: str) -> None:
        """Hand a QUEUED, unclaimed task to the backend, exactly once."""
        with self._submitting_lock:
            self._submitting.add(task_id)
        try:
            if self._claim(task_id):
                self._submit_claimed(task_id)
        finally:
            with self._submitting_lock:
                self._submitting.discard(task_id)

    def _submit_claimed(self, task_id: str) -> None:
        record = self._patiently(lambda: self._load(task_id), f"reading task {task_id}")
        if record is not None and record.state == State.CANCELING:
            # Cancelled between the claim and now: this worker owns it, so it finishes it.
            self.finish_cancel(task_id)
            return
        if record is None or record.state != State.QUEUED:
            return
        try:
            record = self.backend.dispatched(record)
        except SigningUnavailable as exc:
            self._wait_for_signing(task_id, exc)
            return
        except Exception as exc:
            log.warning("task %s: %s", task_id, exc)
            self.reporter.report(failed(task_id, str(exc)))
            return
        if _waiting_reason(record).startswith(SIGNING_WAIT):
            self.reporter.report(Observation(task_id=task_id, waiting_reason=""))
        try:
            ref = self.backend.submit(record)
        except WorkerStopping:
            log.info("task %s: left claimed for the next worker (this one stops)", task_id)
            return
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

    def _wait_for_signing(self, task_id: str, exc: SigningUnavailable) -> None:
        """Give the claim back, saying why the task waits: the reconcile pass submits it
        again once it has waited ``stale_after`` seconds unclaimed."""
        log.warning("task %s: %s; submitting it again in about %.0f s", task_id, exc,
                    self.stale_after)
        self.reporter.report(Observation(
            task_id=task_id,
            waiting_reason=f"{SIGNING_WAIT}: {exc.__cause__ or exc}; trying again in about "
                           f"{self.stale_after:.0f} s"))
        with self.db.write() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.state == State.QUEUED.value,
                       tasks.c.backend_ref == "claimed", tasks.c.worker_id == self.worker_id)
                .values(backend_ref=None, worker_id=None, updated_at=utcnow())
            )

    def _load(self, task_id: str) -> TaskRecord | None:
        with self.db.read() as conn:
            return load_record(conn, task_id)

    def _patiently(self, call: Callable[[], T], what: str) -> T:
        patience = self.reporter.patience
        return patiently(call, timeout=patience, what=what) if patience > 0 else call()

    def release_stale_claims(self) -> list[str]:
        """Give back this worker's claims that no submission is working on any more.

        A claim whose submission failed after the claim was stored (its answer lost in
        a database restart, or the database gone for longer than the worker waits)
        would otherwise keep the task QUEUED for good: the claimer is alive, so nobody
        takes it over. Only the claimer can tell such a claim from a slow submission,
        so each worker checks its own. The tasks are submitted again.
        """
        stale = utcnow() - timedelta(seconds=self.stale_after)
        with self.db.read() as conn:
            claimed = conn.execute(
                select(tasks.c.id).where(
                    tasks.c.state == State.QUEUED.value,
                    tasks.c.backend_ref == "claimed",
                    tasks.c.worker_id == self.worker_id,
                    tasks.c.updated_at < stale,
                )
            ).scalars().all()
        with self._submitting_lock:
            lost = [task_id for task_id in claimed if task_id not in self._submitting]
        if not lost:
            return []
        with self.db.write() as conn:
            released = list(conn.execute(
                update(tasks)
                .where(tasks.c.id.in_(lost), tasks.c.state == State.QUEUED.value,
                       tasks.c.backend_ref == "claimed", tasks.c.worker_id == self.worker_id)
                .values(backend_ref=None, worker_id=None, updated_at=utcnow())
                .returning(tasks.c.id)
            ).scalars())
        for task_id in released:
            log.warning("task %s: its submission by this worker was interrupted; "
                        "submitting it again", task_id)
            self.messages.submit(task_id)
        return released

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
        """One pass over unfinished tasks; only one runs at a time across all workers.

        The pass walks the active tasks state by state in keyset batches of
        ``batch_size``; each batch costs a fixed number of queries (one read, at most
        one liveness check, one batched write per kind of change), so a pass makes
        ``O(tasks / batch_size)`` queries, never one per task. The lock is renewed
        after every batch and expires ``lock_ttl`` seconds after the last renewal, so
        the lock of a worker that died mid-pass frees itself. Then one batch of expired
        finished tasks is removed (:mod:`.retention`), and :attr:`after_pass` runs (one query
        for unfinished provisioning requests).
        """
        if not acquire_lease(self.db, RECONCILE_LEASE, self.worker_id, ttl=self.lock_ttl):
            return
        started = time.monotonic()
        seen = 0
        try:
            for state in _PASS_ORDER:
                after = 0
                while True:
                    with self.db.read() as conn:
                        rows = active_batch(conn, state, after, self.batch_size)
                    if not rows:
                        break
                    seen += len(rows)
                    self._reconcile_batch(state, rows)
                    if len(rows) < self.batch_size:
                        break
                    after = rows[-1].seq
                    if not acquire_lease(
                        self.db, RECONCILE_LEASE, self.worker_id, ttl=self.lock_ttl
                    ):
                        log.warning("reconcile lock lost mid-pass; stopping this pass")
                        return
            self._sweep()
            self._after_pass()
        finally:
            release_lease(self.db, RECONCILE_LEASE, self.worker_id)
        log.debug("reconcile pass over %d active tasks took %.3fs", seen,
                  time.monotonic() - started)

    def _after_pass(self) -> None:
        if self.after_pass is None:
            return
        try:
            self.after_pass()
        except Exception:
            log.warning("the end-of-pass check failed; the next pass tries again",
                        exc_info=True)

    def _sweep(self) -> None:
        if self.retention is None:
            return
        try:
            self.retention.sweep()
        except Exception:
            log.warning("removing expired finished tasks failed; the next pass tries again",
                        exc_info=True)

    def _reconcile_batch(self, state: State, rows: Sequence[Row]) -> None:
        stale = utcnow() - timedelta(seconds=self.stale_after)
        mine = [row for row in rows if row.backend == self.backend.name]
        if state == State.CANCELING:
            self._finish_stale_cancels([row for row in rows if row.updated_at < stale])
            return
        if state == State.QUEUED:
            for row in rows:
                if row.backend_ref is None and row.updated_at < stale:
                    log.info("task %s was never submitted; submitting it again", row.id)
                    self.messages.submit(row.id)
        owned = [row for row in mine if row.worker_id is not None]
        alive = self.registry.alive({row.worker_id for row in owned}) if owned else set()
        orphans = [row for row in owned if row.worker_id not in alive]
        if state == State.QUEUED:
            # Claimed (or, on a backend running in its worker, waiting for a slot) by a
            # worker that died: release and submit again. A remote backend's claim is only
            # stale if the submission never recorded the platform's reference.
            lost = [
                row for row in orphans
                if self.backend.runs_in_worker or row.backend_ref == "claimed"
            ]
            for task_id in self._take_over(lost, release=True):
                log.info("task %s: its worker died before starting it; submitting again",
                         task_id)
                self.messages.submit(task_id)
        elif self.backend.runs_in_worker:
            self._recover(orphans)
        if not self.backend.runs_in_worker:
            self._poll(
                [row for row in mine if row.backend_ref not in (None, "claimed")]
            )

    def _finish_stale_cancels(self, rows: Sequence[Row]) -> None:
        """CANCELING for long: never submitted -> CANCELED at once, in one statement;
        the others get their cancel message again (when no live worker runs them)."""
        never = [row for row in rows if row.backend_ref is None]
        if never:
            now = datetime.now(UTC)
            self.reporter.report_batch(
                [Observation(task_id=row.id, state=State.CANCELED, end_time=now)
                 for row in never],
                {row.id: _stored(row) for row in never},
            )
        rest = [row for row in rows if row.backend_ref is not None]
        if self.backend.runs_in_worker and rest:
            alive = self.registry.alive({row.worker_id for row in rest if row.worker_id})
            rest = [row for row in rest if row.worker_id not in alive]
        for row in rest:
            log.info("task %s is still CANCELING; sending its cancel again", row.id)
            self.messages.cancel(row.id)

    def _recover(self, orphans: Sequence[Row]) -> None:
        """Active tasks whose worker died: this worker takes them over and recovers them."""
        taken = set(self._take_over(orphans, release=False))
        for row in orphans:
            if row.id not in taken:
                continue
            log.warning("task %s: its worker %s died while it was %s; recovering",
                        row.id, row.worker_id, row.state)
            record = record_of(row)  # names the dead owner
            try:
                record = self.backend.dispatched(record)
            except Exception as exc:
                # Recovery goes on with the stored URLs: what the task still has to do
                # with them fails on its own and says so.
                log.warning("task %s: recovering it with its URLs as stored: %s", row.id, exc)
            observation = self.backend.recover(record)
            if observation is not None:
                self.reporter.report(observation)

    def _take_over(self, rows: Sequence[Row], *, release: bool) -> list[str]:
        """Move tasks from their dead owners to this worker (or to nobody, ``release``);
        one guarded UPDATE per dead owner. Returns the ids that moved."""
        by_owner: dict[str, list[str]] = {}
        for row in rows:
            by_owner.setdefault(row.worker_id, []).append(row.id)
        if not by_owner:
            return []
        values: dict[str, object] = {"updated_at": utcnow()}
        if release:
            values.update(worker_id=None, backend_ref=None)
        else:
            values["worker_id"] = self.worker_id
        moved: list[str] = []
        with self.db.write() as conn:
            for owner, ids in by_owner.items():
                moved += conn.execute(
                    update(tasks)
                    .where(tasks.c.worker_id == owner, tasks.c.id.in_(ids))
                    .values(**values)
                    .returning(tasks.c.id)
                ).scalars()
        return moved

    def _poll(self, rows: Sequence[Row]) -> None:
        """Ask the backend about a batch of tasks at once and apply what it says."""
        if not rows:
            return
        try:
            observations = list(self.backend.poll([record_of(row) for row in rows]))
        except Exception:
            log.warning("polling backend %s failed; will retry", self.backend.name,
                        exc_info=True)
            return
        if observations:
            self.reporter.report_batch(observations, {row.id: _stored(row) for row in rows})


_PASS_ORDER = (State.CANCELING, State.PAUSED, State.RUNNING, State.INITIALIZING, State.QUEUED)
"""Every active state, latest first: a task a batch moves on (QUEUED -> RUNNING) lands in a
state this pass has already walked, so it is not polled twice in one pass."""
assert set(_PASS_ORDER) == set(ACTIVE)


def _waiting_reason(task: TaskRecord) -> str:
    """The current attempt's waiting reason, ``""`` when it waits for nothing."""
    return str(((task.logs or [{}])[-1].get("metadata") or {}).get(WAITING_REASON) or "")


def _stored(row: Row) -> StoredTask:
    return StoredTask(id=row.id, state=row.state, logs=row.logs, updated_at=row.updated_at)
