"""From a Batch task's state (one row of a job's task list), its pool, and, once it
completed, the runner's ``status.json`` to a TES observation.

Batch task                        runner's status.json     TES
--------------------------------  -----------------------  ----------------------------------
active, pool cannot grow          -                        QUEUED, the resize error as reason
active, nodes failed start task   -                        QUEUED, saying so
active, waiting for a node        -                        QUEUED, "waiting for a node"
not completed, requeueCount > 0   -                        PREEMPTED, then a new attempt
preparing, running                -                        INITIALIZING (GET reads the file)
completed, exit 0                 final                    its state, logs, outputs
completed with failureInfo        any                      SYSTEM_ERROR with Batch's text
completed, other exit             not final                SYSTEM_ERROR, the end of stderr
unknown to Batch                  -                        SYSTEM_ERROR: Batch lost the task
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from azure.batch import models
from tes_core.backends.base import BackendError, Observation, TaskRecord, failed
from tes_core.backends.runner_status import current_attempt, from_status, if_changed, is_waiting

QUOTA_CODES = {
    "AccountCoreQuotaReached": "the Batch account's core quota is used up",
    "AccountLowPriorityCoreQuotaReached": "the account's low-priority core quota is used up",
    "AccountSpotCoreQuotaReached": "the account's spot core quota is used up",
    "PoolQuotaReached": "the account has as many pools as its quota allows",
    "ActiveJobAndScheduleQuotaReached": "the account has as many active jobs as its quota "
                                        "allows",
    "AllocationFailed": "Azure has no capacity for this VM size in the region right now",
    "AllocationTimedout": "allocating nodes timed out",
    "OverconstrainedAllocationRequest": "no capacity meets the pool's constraints",
}
"""Resize and create errors a task waits out (the pool grows once capacity is back)."""


def enum_value(value: Any) -> str:
    """The wire value of one of the SDK's enums (``str()`` of one gives its Python name)."""
    return str(getattr(value, "value", value))


def pool_reason(pool: models.BatchPool | None, pool_id: str,
                counts: models.BatchPoolNodeCounts | None = None) -> str:
    """Why a task of ``pool_id`` waits for a node."""
    if pool is None:
        return f"waiting for Batch pool {pool_id} to be created"
    failed_nodes = sum(getattr(kind, "start_task_failed", 0) or 0 for kind in (
        counts.dedicated, counts.low_priority)) if counts is not None else 0
    if failed_nodes:
        return (f"Batch pool {pool_id}: {failed_nodes} node(s) failed the start task that "
                "installs tes-runner, so no task can run there; check "
                "TES_BATCH_RUNNER_INSTALL and TES_BATCH_NODE_IMAGE (the start task's "
                "stderr.txt on a node says why)")
    errors = [e for e in pool.resize_errors or () if e.code]
    if errors:
        parts = [f"{e.code}: {(e.message or '').strip()}"
                 + (f" ({QUOTA_CODES[e.code]})" if e.code in QUOTA_CODES else "")
                 for e in errors]
        return f"Batch pool {pool_id} cannot add nodes: " + "; ".join(parts)
    return f"waiting for a node of Batch pool {pool_id} ({pool.vm_size})"


def observe(
    task: TaskRecord,
    batch_task: models.BatchTask | None,
    pool: models.BatchPool | None,
    *,
    counts: models.BatchPoolNodeCounts | None = None,
    ids: Mapping[str, str],
    read_status: Callable[[], dict[str, Any] | None],
    read_stderr: Callable[[], str],
    resubmit: Callable[[int], str],
    max_attempts: int,
) -> Observation | None:
    """What to report about ``task``; ``None`` when nothing changed. ``ids`` (job, task,
    pool, VM size and price) go into the attempt's metadata."""
    metadata = dict(ids)
    if batch_task is None:
        return failed(task.id, f"Batch no longer knows task {ids['batch_task_id']} of job "
                               f"{ids['batch_job_id']}; it was deleted outside TES")
    info = batch_task.execution_info
    node = batch_task.node_info
    if node is not None and node.node_id:
        metadata["batch_node_id"] = node.node_id
    state = enum_value(batch_task.state)
    if state != "completed" and info is not None and info.requeue_count:
        return _preempted(task, ids, resubmit, max_attempts)  # maybe rescheduled already
    if state == "active":
        return _waiting(task, pool_reason(pool, ids["batch_pool_id"], counts), metadata)
    if state in ("preparing", "running"):
        if task.state in ("INITIALIZING", "RUNNING"):
            return if_changed(task, Observation(task_id=task.id, metadata=metadata))
        return Observation(task_id=task.id, state="INITIALIZING", metadata=metadata,
                           start_time=info.start_time if info else None,
                           waiting_reason="" if is_waiting(task) else None)
    return _completed(task, info, metadata, read_status, read_stderr)


def _completed(
    task: TaskRecord,
    info: models.BatchTaskExecutionInfo | None,
    metadata: dict[str, str],
    read_status: Callable[[], dict[str, Any] | None],
    read_stderr: Callable[[], str],
) -> Observation:
    name = metadata["batch_task_id"]
    status = read_status()
    final = bool(status and status.get("final") and status.get("state") != "CANCELED")
    failure = info.failure_info if info is not None else None
    if failure is not None and failure.code == "FailureExitCode":
        failure = None  # the exit code and stderr say more than Batch's generic text
    exit_code = info.exit_code if info is not None else None
    if final and failure is None:
        return from_status(task, status, metadata)  # type: ignore[arg-type]
    if failure is not None:
        details = "; ".join(f"{d.name}={d.value}" for d in failure.details or ())
        reason = (f"Batch task {name} failed ({failure.category}, {failure.code}): "
                  f"{(failure.message or '').strip()}" + (f" [{details}]" if details else ""))
    else:
        tail = read_stderr().strip()[-1500:]
        reason = (f"Batch task {name} ended with exit code {exit_code} without its runner "
                  f"recording a final state; the end of its stderr: {tail or '(empty)'}")
    observation = failed(task.id, reason)
    if status:
        partial = from_status(task, status, metadata)
        observation.start_time = partial.start_time
        observation.executor_logs = partial.executor_logs
        observation.system_logs = partial.system_logs + observation.system_logs
    observation.metadata = metadata
    return observation


def _preempted(task: TaskRecord, ids: Mapping[str, str], resubmit: Callable[[int], str],
               max_attempts: int) -> Observation:
    attempt = max(1, len(task.logs))
    name = ids["batch_task_id"]
    if attempt < max_attempts:
        try:
            new_ref = resubmit(attempt + 1)
        except BackendError as exc:  # the next attempt can never run (quota, size)
            return failed(task.id, f"Batch preempted the node of task {name} (attempt "
                                   f"{attempt}); no new attempt: {exc}")
        return next_attempt(task.id, name, attempt, new_ref)
    observation = failed(task.id, f"Batch preempted the node of task {name}: attempt "
                                  f"{attempt} of {max_attempts} (TES_BATCH_MAX_ATTEMPTS)")
    observation.state = "PREEMPTED"
    return observation


def next_attempt(task_id: str, name: str, attempt: int, new_ref: str) -> Observation:
    """The new attempt after Batch task ``name`` (attempt ``attempt``) was preempted."""
    return Observation(
        task_id=task_id, new_attempt=True, backend_ref=new_ref,
        system_logs=[f"Batch preempted the node of task {name} (attempt {attempt}); "
                     f"attempt {attempt + 1} is Batch task {new_ref}"])


def _waiting(task: TaskRecord, reason: str, metadata: dict[str, str]) -> Observation | None:
    known = current_attempt(task).get("metadata") or {}
    if known.get("waiting_reason") == reason and all(
            known.get(k) == v for k, v in metadata.items()):
        return None
    return Observation(task_id=task.id, waiting_reason=reason, metadata=metadata)

