"""One look at Batch per reconcile pass: the tasks of each pool job involved (or, with
auto-pools, the list of the attempts' jobs) and the pools, shared by the pass's several
``poll`` calls (one per state) for a short time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from azure.batch import models

from .client import BatchApi, BatchApiError


@dataclass
class Snapshot:
    """The tasks of some jobs (by job, then Batch task id), the server's pools and their
    node counts."""

    tasks: dict[str, dict[str, models.BatchTask]] = field(default_factory=dict)
    pools: dict[str, models.BatchPool] = field(default_factory=dict)
    node_counts: dict[str, models.BatchPoolNodeCounts] = field(default_factory=dict)
    jobs: dict[str, models.BatchJob] | None = None
    """The auto-pool jobs by id (``per-task`` mode), listed once; ``None``: not yet."""
    taken: float = 0.0


class Snapshots:
    """Lists each job's tasks (one request per page), the pools and their node counts (one
    per page each) at most once per ``ttl`` seconds; a job not seen yet is listed on
    demand."""

    def __init__(self, api: BatchApi, prefix: str, ttl: float, job_prefix: str = "") -> None:
        self.api = api
        self.prefix = prefix
        self.job_prefix = job_prefix
        """``per-task`` mode: the jobs starting with this are listed (one request per page)
        instead of each job's tasks."""
        self.ttl = ttl
        self._lock = threading.Lock()
        self._current = Snapshot()

    def get(self, jobs: Iterable[str]) -> Snapshot:
        """A snapshot covering ``jobs``; ``BatchApiError`` when Batch does not answer."""
        with self._lock:
            now = time.monotonic()
            if now - self._current.taken > self.ttl:
                pools = {p.id: p for p in self.api.list_pools(f"{self.prefix}-")}
                counts = {c.pool_id: c for c in self.api.list_node_counts()
                          if c.pool_id in pools}
                self._current = Snapshot(pools=pools, node_counts=counts, taken=now)
            if self.job_prefix:
                if self._current.jobs is None:
                    self._current.jobs = {j.id: j for j in self.api.list_jobs(self.job_prefix)}
                return self._current
            for job in sorted(set(jobs) - set(self._current.tasks)):
                self._current.tasks[job] = self._list(job)
            return self._current

    def _list(self, job: str) -> dict[str, models.BatchTask]:
        try:
            return {task.id: task for task in self.api.list_tasks(job)}
        except BatchApiError as exc:
            if exc.code == "JobNotFound":
                return {}
            raise

    def forget(self) -> None:
        """Drop the snapshot (after a submit or cancel changed what Batch holds)."""
        with self._lock:
            self._current = Snapshot()
