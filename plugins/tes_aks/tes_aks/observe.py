"""From one pass's lists of Jobs, Pods and status ConfigMaps to TES observations.

coordinator Job / pods               status ConfigMap             TES
-----------------------------------  ---------------------------  ----------------------------
any                                  COMPLETE, EXECUTOR_ERROR,    that state, logs, outputs
                                     SYSTEM_ERROR (final)
any                                  PREEMPTED (a pod evicted)    new attempt, at last PREEMPTED
a pod's image cannot be pulled       not final                    waiting reason naming the
                                                                  image; SYSTEM_ERROR after
                                                                  TES_AKS_IMAGE_PULL_WAIT
a pod is Unschedulable               none, QUEUED, INITIALIZING   QUEUED, waiting reason with
                                                                  the scheduler's message
a pod is Unschedulable               RUNNING                      RUNNING, the same reason
Job ended, its pod evicted           not final                    new attempt, at last PREEMPTED
Job ended otherwise                  not final                    SYSTEM_ERROR with its log tail
Job gone                             none or not final            SYSTEM_ERROR: deleted outside
running                              INITIALIZING, RUNNING        that state, executor logs
running                              none yet                     INITIALIZING
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tes_core.backends.base import Observation, TaskRecord, failed
from tes_core.backends.runner_status import current_attempt, from_status, if_changed, is_waiting
from tes_runner.events import INITIALIZING

from . import names, podstate
from .coordinator import PREEMPTED, QUEUED
from .manifests import STATUS_KEY


@dataclass
class Attempt:
    """What one pass saw of one task attempt."""

    job: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)


def status_document(config_map: dict[str, Any]) -> dict[str, Any] | None:
    """The status document a status ConfigMap holds (``None`` if unreadable)."""
    try:
        data = json.loads((config_map.get("data") or {}).get(STATUS_KEY) or "null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def index(
    jobs: list[dict[str, Any]], pods: list[dict[str, Any]], config_maps: list[dict[str, Any]]
) -> dict[str, Attempt]:
    """Group the listed objects by attempt (the coordinator Job's name)."""
    seen: dict[str, Attempt] = {}
    for job in jobs:
        seen.setdefault(job["metadata"]["name"], Attempt()).job = job
    for config_map in config_maps:
        name = config_map["metadata"]["name"].removesuffix("-status")
        seen.setdefault(name, Attempt()).status = status_document(config_map)
    by_attempt: dict[tuple[str, str], str] = {}
    for name, attempt in seen.items():
        if attempt.job is not None:
            labels = attempt.job["metadata"].get("labels") or {}
            by_attempt[(labels.get(names.TASK, ""), labels.get(names.ATTEMPT, ""))] = name
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        name = by_attempt.get((labels.get(names.TASK, ""), labels.get(names.ATTEMPT, "")))
        if name is not None:
            seen[name].pods.append(pod)
    return seen


def observe(
    task: TaskRecord,
    seen: Attempt,
    *,
    image_pull_wait: float,
    preempt: Callable[[str], Observation],
    coordinator_log: Callable[[str], str],
    now: datetime | None = None,
) -> Observation | None:
    """What to report about ``task``; ``None`` when nothing changed."""
    now = now or datetime.now(UTC)
    status = seen.status
    if status is not None and status.get("final"):
        if status.get("state") == PREEMPTED:
            return preempt(_last_line(status))
        return from_status(task, status, {})
    if seen.job is None:
        return failed(
            task.id,
            f"the coordinator Job {task.backend_ref} no longer exists "
            "(deleted outside TES) and recorded no final state",
        )
    for pod in seen.pods:
        failure = podstate.pull_failure(pod)
        if failure is not None:
            waited = (now - (failure.since or now)).total_seconds()
            if waited >= image_pull_wait:
                return failed(
                    task.id,
                    f"pod {pod['metadata']['name']}: {failure.describe()}; "
                    f"gave up after {int(waited)} s "
                    "(TES_AKS_IMAGE_PULL_WAIT)",
                )
            return _waiting(task, f"pod {pod['metadata']['name']}: {failure.describe()}")
    ended = podstate.job_finished(seen.job)
    if ended is not None:
        coordinators = [
            p
            for p in seen.pods
            if (p["metadata"].get("labels") or {}).get(names.ROLE) == names.COORDINATOR
        ]
        for pod in coordinators:
            reason = podstate.evicted(pod)
            if reason:
                return preempt(
                    f"the coordinator pod {pod['metadata']['name']} was taken off "
                    f"its node ({reason})"
                )
        tail = coordinator_log(coordinators[0]["metadata"]["name"]) if coordinators else ""
        return failed(
            task.id,
            f"the coordinator Job {task.backend_ref} ended ({ended}) "
            "without recording a final state; the end of its log: "
            f"{tail.strip()[-1000:] or '(empty)'}",
        )
    pending = next(
        (
            f"pod {pod['metadata']['name']} waits for a node: {message}"
            for pod in seen.pods
            if (message := podstate.unschedulable(pod))
        ),
        None,
    )
    if status is None:
        return _waiting(task, pending, queued=True) if pending else None
    return from_status_if_changed(task, status, pending)


def _last_line(status: dict[str, Any]) -> str:
    lines = (status.get("log") or {}).get("system_logs") or ["a pod was evicted"]
    return str(lines[-1])


def _waiting(task: TaskRecord, reason: str, queued: bool = False) -> Observation | None:
    """A pod of the attempt waits (for an image; for a node: ``queued``, and an
    INITIALIZING task goes back to QUEUED); ``None`` when nothing changed."""
    state = QUEUED if queued and task.state == INITIALIZING else None
    if (
        state is None
        and (current_attempt(task).get("metadata") or {}).get("waiting_reason") == reason
    ):
        return None
    return Observation(task_id=task.id, state=state, waiting_reason=reason)


def from_status_if_changed(
    task: TaskRecord, status: dict[str, Any], pending: str | None = None
) -> Observation | None:
    """What a non-final status document says (its ``waiting`` as the waiting reason),
    ``None`` when nothing changed. ``pending`` says a pod of the attempt waits for a
    node: before the first executor ran (the status QUEUED or INITIALIZING) the task is
    QUEUED with that reason; once RUNNING it stays RUNNING (TES has no way back) and
    only the reason says so."""
    observation = from_status(task, status, {})
    waiting = status.get("waiting") or pending
    if task.state in (QUEUED, INITIALIZING) and (
        status.get("state") == QUEUED or (pending and status.get("state") == INITIALIZING)
    ):
        observation.state = QUEUED
    if waiting:
        if (current_attempt(task).get("metadata") or {}).get("waiting_reason") != waiting:
            observation.waiting_reason = str(waiting)
    elif is_waiting(task):
        observation.waiting_reason = ""
    return if_changed(task, observation)
