"""The sweep: deletes the Batch tasks of finished TES tasks (their files on the node go
with them) and the pools, with their jobs, that no task used for ``TES_BATCH_POOL_IDLE``
seconds. It runs from the reconcile pass at most every ``TES_BATCH_SWEEP_INTERVAL``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tes_core.backends.base import TaskReporter
from tes_core.states import is_terminal

from . import ids
from .client import BatchApi, BatchApiError
from .observe import enum_value
from .settings import BatchSettings

log = logging.getLogger(__name__)

SWEEP_FIELDS = ("id", "state", "displayName")


class Sweeper:
    """Remembers since when each pool is idle; deletes what no TES task needs."""

    def __init__(self, api: BatchApi, conf: BatchSettings, reporter: TaskReporter,
                 on_delete: Callable[[str], None] = lambda pool: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.conf = conf
        self.reporter = reporter
        self.on_delete = on_delete
        self.clock = clock
        self._idle_since: dict[str, float] = {}
        self._last: float | None = None
        self._lock = threading.Lock()

    def maybe_sweep(self) -> None:
        """Sweep when the interval has passed since the last sweep; never raise."""
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.conf.sweep_interval:
                return
            self._last = now
        try:
            self.sweep()
        except BatchApiError as exc:
            log.warning("the Batch sweep stopped: %s", exc)

    def sweep(self) -> list[str]:
        """One sweep; returns the ids of the pools (and auto-pool jobs) it deleted."""
        auto = ids.auto_pool_prefix(self.conf.pool_prefix)
        deleted = self._remove_finished_jobs(auto + "-")
        for pool in self.api.list_pools(f"{self.conf.pool_prefix}-"):
            if pool.id.startswith(auto + "_"):
                continue  # an auto-pool: it goes with its job
            job = ids.job_id(pool.id)
            left = self._remove_finished(job)
            nodes = (pool.current_dedicated_nodes or 0) + (pool.current_low_priority_nodes or 0)
            if left or nodes:
                self._idle_since.pop(pool.id, None)
                continue
            since = self._idle_since.setdefault(pool.id, self.clock())
            if self.clock() - since >= self.conf.pool_idle:
                log.info("deleting Batch pool %s and its job: idle for %.0f s", pool.id,
                         self.clock() - since)
                self.on_delete(pool.id)
                self.api.delete_pool_and_job(pool.id, job)
                self._idle_since.pop(pool.id, None)
                deleted.append(pool.id)
        return deleted

    def _remove_finished_jobs(self, prefix: str) -> list[str]:
        """Delete the auto-pool jobs (``per-task`` mode) whose TES task ended or is gone:
        Batch deletes each one's pool with it. One listing per page of 1,000 jobs."""
        jobs = self.api.list_jobs(prefix, select=SWEEP_FIELDS)
        states = self.reporter.states_of({j.display_name for j in jobs if j.display_name})
        deleted = []
        for job in jobs:
            state = states.get(job.display_name or "")
            if state is None or is_terminal(state):
                log.info("deleting Batch job %s and its auto-pool: its TES task %s", job.id,
                         "ended" if state else "is gone")
                self.api.delete_job(job.id)
                deleted.append(job.id)
        return deleted

    def _remove_finished(self, job: str) -> int:
        """Delete the job's completed tasks whose TES task ended or is gone; returns how
        many tasks the job keeps."""
        try:
            tasks = self.api.list_tasks(job, select=SWEEP_FIELDS)
        except BatchApiError as exc:
            if exc.code == "JobNotFound":
                return 0
            raise
        finished = [t for t in tasks if enum_value(t.state) == "completed"]
        states = self.reporter.states_of({t.display_name for t in finished if t.display_name})
        kept = len(tasks)
        for task in finished:
            state = states.get(task.display_name or "")
            if state is None or is_terminal(state):
                self.api.remove_task(job, task.id)
                kept -= 1
        return kept
