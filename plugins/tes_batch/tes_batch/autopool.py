"""``per-task`` pool mode: what a reconcile pass knows of an attempt from the list of the
attempts' jobs (its auto-pool's id), the pools and their node counts, and when it must ask
Batch for the Batch task itself.

An auto-pool has one node and runs one task, so its node counts say where the task is:
no node, or nodes starting or failing their start task: the task waits (QUEUED, the pool's
resize errors or start-task failures as the reason); a node ``running``: the task runs;
a node in any other state (``idle``: the task ended; ``preempted``, ``offline``...): the
task is read (one ``GET`` per such task, as the status file is read once per finished task).
"""

from __future__ import annotations

from typing import Any

from azure.batch import models

from .client import BatchApi
from .observe import enum_value

SETTLED = ("running", "starting", "waiting_for_start_task", "creating", "start_task_failed")
"""Node states that say the task has not ended (one task per auto-pool node)."""


def _stand_in(name: str, state: str) -> models.BatchTask:
    """The Batch task as the counts show it, without asking Batch."""
    return models.BatchTask(
        id=name,
        state=state,
        execution_info=models.BatchTaskExecutionInfo(retry_count=0, requeue_count=0),
    )


def scheduling_error(snapshot: Any, job: str) -> str | None:
    """Why Batch could not make the job's pool (``executionInfo.schedulingError``, e.g.
    ``PoolQuotaReached``), or ``None``."""
    batch_job = (snapshot.jobs or {}).get(job)
    info = batch_job.execution_info if batch_job is not None else None
    error = info.scheduling_error if info is not None else None
    if error is None:
        return None
    return f"{error.code}: {(error.message or '').strip()}"


def look(api: BatchApi, snapshot: Any, job: str, name: str) -> tuple[str, models.BatchTask | None]:
    """``(pool id, Batch task)`` of one attempt; the task is read from Batch only when the
    counts cannot tell (see the module's text)."""
    batch_job = (snapshot.jobs or {}).get(job)
    info = batch_job.execution_info if batch_job is not None else None
    pool_id = (info.pool_id if info is not None else None) or ""
    if batch_job is None or enum_value(batch_job.state) != "active":
        return pool_id or f"(the auto-pool of job {job})", api.get_task(job, name)
    if not pool_id:
        return f"(the auto-pool of job {job})", _stand_in(name, "active")
    counts = snapshot.node_counts.get(pool_id)
    kinds = [k for k in (counts.dedicated, counts.low_priority) if k is not None] if counts else []
    total = sum(k.total or 0 for k in kinds)
    settled = sum(getattr(k, state, 0) or 0 for k in kinds for state in SETTLED)
    if total > settled:
        return pool_id, api.get_task(job, name)
    running = sum(k.running or 0 for k in kinds)
    return pool_id, _stand_in(name, "running" if running else "active")
