"""The node-side runner's contract (``tes-runner run``, see runner/README.md) as the
backends that run it on a remote node (Slurm, Azure Batch) share it: the ``task.json`` they
hand it, and its ``status.json`` turned into a TES observation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .base import Observation, TaskRecord

RUNNER_STATES = frozenset({"INITIALIZING", "RUNNING", "COMPLETE", "EXECUTOR_ERROR",
                           "SYSTEM_ERROR"})
"""The runner's states a backend reports as they are (CANCELED needs the platform's word)."""


def task_file(task: TaskRecord, attempt: int, runtime: str,
              policy: Mapping[str, Any], live_output_max: int | None = None) -> dict[str, Any]:
    """The runner's ``task.json`` for ``attempt`` of ``task``; ``policy`` is the server's
    ``AccessPolicy.portable()``; ``live_output_max`` the cap of the executors' live
    output copies (``TES_OUTPUT_LIVE_MAX``; the runner's default when ``None``)."""
    document = {
        "task": {**task.document, "id": task.id},
        "attempt": attempt,
        "runtime": runtime,
        "policy": dict(policy),
        "transfer": {},
        "shared_global": None,
        "runtime_options": {},
    }
    if live_output_max is not None:
        document["live_output_max"] = live_output_max
    return document


def from_status(task: TaskRecord, status: Mapping[str, Any],
                metadata: Mapping[str, str]) -> Observation:
    """The observation the runner's status file makes (its state, logs and outputs), with
    ``metadata`` (the platform's ids) merged over the runner's own."""
    log = status.get("log") if isinstance(status.get("log"), dict) else {}
    state = status.get("state")
    final = bool(status.get("final"))
    known = set(current_attempt(task).get("system_logs") or ())
    lines = [str(line) for line in log.get("system_logs") or () if str(line) not in known]
    merged = {str(k): str(v) for k, v in (log.get("metadata") or {}).items()}
    merged.update(metadata)
    return Observation(
        task_id=task.id,
        state=state if state in RUNNER_STATES else None,
        start_time=parse_time(log.get("start_time")),
        end_time=parse_time(log.get("end_time")) if final else None,
        executor_logs=list(log.get("logs") or []),
        outputs=list(log.get("outputs") or []) if final else None,
        system_logs=lines,
        metadata=merged,
    )


def if_changed(task: TaskRecord, observation: Observation) -> Observation | None:
    """``observation``, or ``None`` when it would change nothing the task shows."""
    attempt = current_attempt(task)
    same = (
        observation.state in (None, task.state)
        and not observation.system_logs
        and observation.waiting_reason is None
        and (observation.executor_logs is None
             or observation.executor_logs == attempt.get("logs"))
        and (observation.start_time is None or attempt.get("start_time"))
        and all(attempt.get("metadata", {}).get(k) == v
                for k, v in (observation.metadata or {}).items())
    )
    return None if same else observation


def current_attempt(task: TaskRecord) -> dict[str, Any]:
    """The task's last entry in ``logs`` (``{}`` before its first)."""
    return task.logs[-1] if task.logs else {}


def is_waiting(task: TaskRecord) -> bool:
    """Whether the current attempt shows a waiting reason."""
    return "waiting_reason" in (current_attempt(task).get("metadata") or {})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time of the status file (UTC when it names no zone); ``None`` if not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
