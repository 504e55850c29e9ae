"""From a Slurm job's state and the runner's ``status.json`` to a TES observation.

Slurm job (squeue/sacct)      runner's status.json         TES
----------------------------  ---------------------------  -------------------------------
any                           COMPLETE, EXECUTOR_ERROR,    that state, logs, outputs
                              SYSTEM_ERROR (final)
PENDING and other waits       -                            the reason in system_logs
CONFIGURING, RUNNING, ...     none yet                     INITIALIZING
RUNNING, COMPLETING           INITIALIZING, RUNNING        that state, executor logs
PREEMPTED                     not final                    new attempt, at last PREEMPTED
TIMEOUT                       not final, or CANCELED       SYSTEM_ERROR: time limit
NODE_FAIL, BOOT_FAIL          not final                    SYSTEM_ERROR: node failure
OUT_OF_MEMORY                 not final                    SYSTEM_ERROR: out of memory
CANCELLED, task not CANCELING not final, or CANCELED       SYSTEM_ERROR: scancel outside TES
COMPLETED, FAILED, others     not final                    SYSTEM_ERROR: the output's end
unknown to squeue and sacct   not final                    SYSTEM_ERROR: Slurm forgot it

A runner that records CANCELED was stopped by a signal it did not ask for (the task's
own cancel removes the folder first): Slurm's state says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tes_core.backends.base import Observation, TaskRecord, failed
from tes_core.backends.runner_status import RUNNER_STATES, from_status
from tes_core.backends.runner_status import current_attempt as _attempt
from tes_core.backends.runner_status import if_changed as _changed
from tes_core.backends.runner_status import is_waiting as _waiting

from .parse import ACTIVE, ENDED, STARTING, WAITING, JobInfo
from .snapshot import Lookup
from .taskdir import FINAL_STATES, TaskFolder

REASONS = {
    "Priority": "jobs with a higher priority are ahead of it",
    "Resources": "the resources it asks for are in use",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than its partition allows",
    "PartitionTimeLimit": "its time limit is over its partition's",
    "PartitionConfig": "it asks for more than its partition's nodes have: it may never start",
    "BeginTime": "its start time has not come",
    "Dependency": "it waits for another job",
    "JobHeldUser": "a user holds it",
    "JobHeldAdmin": "an administrator holds it",
    "QOSMaxJobsPerUserLimit": "its QOS lets a user run no more jobs at once",
    "AssocGrpCpuLimit": "its account's CPU limit is reached",
    "AssocMaxJobsLimit": "its account runs as many jobs as allowed",
    "ReqNodeNotAvail": "a node it needs is not available",
    "Reservation": "it waits for its reservation",
}
"""Plain words for the pending reasons seen most (``squeue``'s REASON column)."""

ENDINGS = {
    "TIMEOUT": "it went over its time limit (Slurm state TIMEOUT); ask for more with "
    "backend_parameters.time_limit",
    "NODE_FAIL": "its node failed (Slurm state NODE_FAIL)",
    "BOOT_FAIL": "its node failed to boot (Slurm state BOOT_FAIL)",
    "OUT_OF_MEMORY": "it ran out of memory (Slurm state OUT_OF_MEMORY); ask for more with "
    "resources.ram_gb",
    "CANCELLED": "it was cancelled outside TES (scancel, or an administrator)",
    "DEADLINE": "it missed its deadline (Slurm state DEADLINE)",
    "PREEMPTED": "Slurm preempted it",
}


def waiting_reason(job: JobInfo) -> str:
    """The line a pending job's task shows in its system logs."""
    reason = job.reason or "no reason given"
    key = reason.split(",", 1)[0].strip()
    words = REASONS.get(key)
    return f"Slurm job {job.job_id} is {job.state.lower()}: {reason}" + (
        f" ({words})" if words else ""
    )


def observe(
    task: TaskRecord,
    lookup: Lookup,
    folder: TaskFolder,
    *,
    resubmit: Callable[[int], str],
    max_attempts: int,
) -> Observation | None:
    """What to report about ``task``; ``None`` when nothing changed or nothing is known."""
    job = lookup.job
    ref = task.backend_ref or ""
    status = folder.status()
    final = status is not None and status.get("final") and status["state"] in FINAL_STATES
    if final and status["state"] != "CANCELED":  # type: ignore[index]
        return _from_status(task, status, ref)  # type: ignore[arg-type]
    if job is None:
        if not lookup.gone:
            return None  # not covered by this pass's snapshot: the next one asks
        return failed(task.id, f"Slurm no longer knows job {ref} (not in squeue nor sacct) "
                               "and its runner recorded no final state")
    if job.state in WAITING:
        reason = waiting_reason(job)
        if _attempt(task).get("metadata", {}).get("waiting_reason") == reason:
            return None
        return Observation(task_id=task.id, waiting_reason=reason,
                           metadata={"slurm_job_id": job.job_id})
    if job.state in STARTING or job.state in ACTIVE:
        if status is None:
            return _changed(task, Observation(
                task_id=task.id, state="INITIALIZING", metadata={"slurm_job_id": job.job_id},
                waiting_reason="" if _waiting(task) else None,
            ))
        observation = _from_status(task, status, ref)
        if _waiting(task):
            observation.waiting_reason = ""
        return _changed(task, observation)
    if job.state in ENDED or job.state not in WAITING | STARTING | ACTIVE:
        return _ended(task, job, status, folder, resubmit, max_attempts)
    return None


def from_folder(task: TaskRecord, folder: TaskFolder) -> Observation | None:
    """What the runner's status file alone says (no Slurm command): for a quick look on
    ``GET``. ``None`` without a status file, when nothing changed, or for CANCELED (which
    only Slurm's state explains)."""
    status = folder.status()
    if status is None or status.get("state") not in RUNNER_STATES:
        return None
    observation = _from_status(task, status, task.backend_ref or "")
    return observation if status.get("final") else _changed(task, observation)


def _ended(
    task: TaskRecord,
    job: JobInfo,
    status: dict[str, Any] | None,
    folder: TaskFolder,
    resubmit: Callable[[int], str],
    max_attempts: int,
) -> Observation | None:
    if job.state == "CANCELLED" and task.state == "CANCELING":
        return None  # our own cancel: it reports CANCELED
    partial = _from_status(task, status, job.job_id) if status else None
    if job.state == "PREEMPTED":
        attempt = max(1, len(task.logs))
        if attempt < max_attempts:
            new_ref = resubmit(attempt + 1)
            return Observation(
                task_id=task.id, new_attempt=True, backend_ref=new_ref,
                system_logs=[f"Slurm preempted job {job.job_id} (attempt {attempt}); "
                             f"attempt {attempt + 1} is job {new_ref}"],
            )
        observation = failed(task.id, f"Slurm job {job.job_id} was preempted {attempt} "
                                      f"times (TES_SLURM_MAX_ATTEMPTS={max_attempts})")
        observation.state = "PREEMPTED"
    elif job.state in ENDINGS:
        observation = failed(task.id, f"Slurm job {job.job_id} ended: {ENDINGS[job.state]}")
    else:
        code = "" if job.exit_code is None else f", exit code {job.exit_code}"
        tail = folder.output_tail(job.job_id)
        observation = failed(
            task.id,
            f"Slurm job {job.job_id} ended {job.state}{code} without its runner recording a "
            f"final state; the end of its output: {tail or '(empty)'}",
        )
    if partial is not None:
        observation.start_time = partial.start_time
        observation.executor_logs = partial.executor_logs
        observation.system_logs = partial.system_logs + observation.system_logs
    observation.metadata = {"slurm_job_id": job.job_id, "slurm_state": job.state}
    return observation


def _from_status(task: TaskRecord, status: dict[str, Any], job_id: str) -> Observation:
    """The observation the runner's status file makes, with the job's id."""
    return from_status(task, status, {"slurm_job_id": job_id})
